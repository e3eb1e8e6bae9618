"""Reading plotly's JSON in tests: arrays arrive as plain lists or as typed arrays."""

from __future__ import annotations

import base64

import numpy as np


def values(field: object) -> np.ndarray:
    """A plotly JSON array: a plain list, or plotly's typed array {"dtype", "bdata", "shape"}."""
    if isinstance(field, dict) and "bdata" in field:
        data = np.frombuffer(base64.b64decode(field["bdata"]), dtype=np.dtype(field["dtype"]))
        shape = field.get("shape")
        if shape:
            data = data.reshape([int(n) for n in str(shape).split(",")])
        return data.astype(float)
    return np.array(field, dtype=float)
