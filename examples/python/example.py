"""dsk from Python: a tensor shared with NumPy, filled with seeded random numbers, cast to bf16."""
import numpy as np

import dsk

with dsk.Context("cpu") as ctx:                        # or "auto" / "cuda"
    x = np.zeros((2, 4), dtype=np.float32)
    dsk.fill_random(ctx, x, seed=42)                   # writes into x's memory (zero-copy DLPack)
    y = dsk.clone(ctx, x, "bf16")                      # a new dsk.Tensor, rounded to bf16
    back = dsk.clone(ctx, y, "f32").numpy()            # bf16 -> f32, viewed by NumPy
    print(dsk.version_string(), y.shape, y.dtype)
    print(np.abs(back - x).max() <= 2.0**-8)          # bf16 keeps 8 significant bits
