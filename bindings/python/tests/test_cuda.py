import numpy as np
import pytest

import dsk

from conftest import requires_cuda


@requires_cuda
def test_cuda_context_and_round_trip():
    with dsk.Context("cuda") as c:
        assert c.backend == "cuda" and c.device == (2, 0)
        props = dsk.devices("cuda")[0]
        assert props.compute_capability[0] >= 8
        t = dsk.empty((64,), "f32", c)
        assert t.device == (2, 0)
        dsk.fill_random(c, t, seed=7)
        host = t.numpy()
        cpu = dsk.empty((64,), "f32")
        dsk.fill_random(None, cpu, seed=7)
        np.testing.assert_array_equal(host, cpu.numpy())  # bit-identical across backends
        b = dsk.clone(c, np.arange(4, dtype=np.float32), "bf16")
        assert b.device == (2, 0)
        np.testing.assert_array_equal(dsk.clone(c, b, "f32").numpy(), [0, 1, 2, 3])
        cap = t.__dlpack__(stream=1, max_version=(1, 1))
        assert "dltensor_versioned" in repr(cap)


@requires_cuda
def test_cuda_tensor_refused_by_cpu_context():
    with dsk.Context("cuda") as c, dsk.Context("cpu") as cpu:
        t = dsk.empty((4,), "f32", c)
        with pytest.raises(dsk.InvalidArgumentError):
            dsk.fill(cpu, t, 1.0)
        with pytest.raises(dsk.InvalidArgumentError):
            dsk.device_props("cuda", 99)
