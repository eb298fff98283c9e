"""dsk.SafeTensors over dsk_safetensors: files are written here by hand (struct + json)."""

import json
import struct

import numpy as np
import pytest

import dsk


def write_safetensors(path, tensors, metadata=None, align=8):
    """tensors: list of (name, dtype string, shape, raw bytes), laid out in that order."""
    header, offset, data = {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    text = json.dumps(header, ensure_ascii=False).encode()
    text += b" " * ((-(8 + len(text))) % align)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def bf16_bits(values):
    return (np.asarray(values, np.float32).view(np.uint32) >> 16).astype(np.uint16)


W = np.arange(6, dtype=np.float32).reshape(2, 3)
B = bf16_bits([1.5, -2.0, 0.25])
D = np.array([0.5, -1e300])
I16 = np.array([-3, 7], dtype=np.int16)


@pytest.fixture
def model(tmp_path):
    return write_safetensors(tmp_path / "model.safetensors", [
        ("d", "F64", [2], D.tobytes()),
        ("w.weight", "F32", [2, 3], W.tobytes()),
        ("b.bias", "BF16", [3], B.tobytes()),
        ("i", "I16", [2], I16.tobytes()),
        ("mask", "BOOL", [3], bytes([1, 0, 1])),
        ("层.权重", "U8", [2], bytes([4, 5])),
    ], metadata={"format": "pt", "step": "3"})


def test_names_views_and_metadata(model):
    with dsk.SafeTensors(model) as st:
        assert len(st) == 6
        assert list(st) == ["b.bias", "d", "i", "mask", "w.weight", "层.权重"]
        assert st.keys() == list(st)
        assert "w.weight" in st and "nope" not in st and 3 not in st
        assert st.name(st.find("d")) == "d"
        w = st.numpy("w.weight")
        assert w.dtype == np.float32 and w.shape == (2, 3)
        np.testing.assert_array_equal(w, W)
        assert not w.flags.writeable
        np.testing.assert_array_equal(st.numpy("b.bias"), B)  # raw bf16 bits as uint16
        np.testing.assert_array_equal(st.numpy("d"), D)
        np.testing.assert_array_equal(st.numpy("i"), I16)
        np.testing.assert_array_equal(st.numpy("mask"), [True, False, True])
        np.testing.assert_array_equal(st.numpy("层.权重"), [4, 5])
        info = st.info("w.weight")
        assert info == dsk.SafeTensorInfo("w.weight", "F32", (2, 3), str(model), info.file_offset,
                                          24, "f32")
        assert model.read_bytes()[info.file_offset:info.file_offset + 24] == W.tobytes()
        assert st.info("d").dsk_dtype is None
        assert st.info("b.bias").dsk_dtype == "bf16"
        assert st.metadata() == {"format": "pt", "step": "3"}
        assert st.metadata_value("step") == "3"
        with pytest.raises(dsk.NotFoundError, match="'absent'") as e:
            st.metadata_value("absent")
        assert isinstance(e.value, KeyError) and e.value.status == 9
        view = st.dltensor("w.weight")
        assert view.ndim == 2 and view.shape[1] == 3 and not view.strides


def test_tensors_are_read_only_dsk_tensors_that_outlive_the_handle(model):
    st = dsk.SafeTensors(model)
    w = st["w.weight"]
    b = st.tensor("b.bias")
    arr = st.numpy("d")
    st.close()
    st.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        len(st)
    assert w.is_read_only and w.shape == (2, 3) and w.dtype == "f32"
    np.testing.assert_array_equal(w.numpy(), W)
    np.testing.assert_array_equal(dsk.clone(None, b, "f32").numpy(), [1.5, -2.0, 0.25])
    np.testing.assert_array_equal(arr, D)
    # An op reads the mapped tensor directly.
    y = np.empty((2, 3), np.float32)
    dsk.softmax(None, w, y)
    np.testing.assert_allclose(y.sum(axis=1), [1, 1], rtol=1e-6)


def test_dtypes_dsk_lacks(model):
    with dsk.SafeTensors(model) as st:
        with pytest.raises(dsk.InvalidArgumentError, match="F64.*numpy"):
            st.tensor("d")
        with pytest.raises(KeyError):
            st["missing"]
        with pytest.raises(TypeError):
            st.find(b"d")


def test_packed_fp4_has_info_but_no_view(tmp_path):
    path = write_safetensors(tmp_path / "fp4.safetensors",
                             [("p", "F4", [2, 2], bytes([0x12, 0x34]))])
    with dsk.SafeTensors(path) as st:
        assert st.info("p").nbytes == 2
        with pytest.raises(dsk.UnsupportedError, match="F4"):
            st.numpy("p")


def test_sharded_index_and_directory(tmp_path):
    write_safetensors(tmp_path / "model-00001-of-00002.safetensors",
                      [("a", "F32", [1], struct.pack("<f", 1.0))], metadata={"format": "pt"})
    write_safetensors(tmp_path / "model-00002-of-00002.safetensors",
                      [("b", "F32", [1], struct.pack("<f", 2.0))])
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": 8}, "weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    for where in (index, tmp_path, str(tmp_path)):
        with dsk.SafeTensors(where) as st:
            assert list(st) == ["a", "b"]
            assert st.numpy("b")[0] == 2.0
            assert st.info("b").file.endswith("model-00002-of-00002.safetensors")
            assert st.metadata() == {"format": "pt"}
    index.write_text(json.dumps({"weight_map": {"a": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(dsk.InvalidArgumentError, match="tensor 'a'.*does not hold it"):
        dsk.SafeTensors(index)


def test_errors_are_typed_and_name_the_file(tmp_path, model):
    with pytest.raises(dsk.IoError, match="missing.safetensors.*No such file") as e:
        dsk.SafeTensors(tmp_path / "missing.safetensors")
    assert isinstance(e.value, OSError) and e.value.status == 8
    whole = model.read_bytes()
    cut = tmp_path / "cut.safetensors"
    for k in range(len(whole)):
        cut.write_bytes(whole[:k])
        with pytest.raises(dsk.InvalidArgumentError, match="cut.safetensors"):
            dsk.SafeTensors(cut)
    bad = write_safetensors(tmp_path / "bad.safetensors", [("x", "F128", [1], b"\0" * 16)])
    with pytest.raises(dsk.InvalidArgumentError, match="tensor 'x': dtype 'F128'"):
        dsk.SafeTensors(bad)
    with pytest.raises(dsk.NotFoundError, match="no \\*.safetensors file"):
        (tmp_path / "empty").mkdir()
        dsk.SafeTensors(tmp_path / "empty")


def test_status_strings_of_the_new_codes():
    assert dsk.status_string(8) == "i/o error"
    assert dsk.status_string(9) == "not found"
