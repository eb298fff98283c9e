//! SafeTensors over dsk_safetensors: files are written here byte by byte.

use dsk::{Context, DType, ErrorKind, SafeTensors, TensorMut};
use std::path::PathBuf;

/// A fresh directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("dsk_rs_st_{tag}_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// (name, dtype, shape, bytes) laid out in order; the header padded to a multiple of 8.
fn file_bytes(tensors: &[(&str, &str, &[i64], Vec<u8>)], metadata: &str) -> Vec<u8> {
    let mut header = format!("{{{metadata}");
    let mut offset = 0;
    for (name, dtype, shape, data) in tensors {
        if header.len() > 1 {
            header.push(',');
        }
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        header += &format!("\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{offset},{}]}}",
                           dims.join(","), offset + data.len());
        offset += data.len();
    }
    header.push('}');
    while (8 + header.len()) % 8 != 0 {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    for (_, _, _, data) in tensors {
        out.extend_from_slice(data);
    }
    out
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn sample(dir: &TempDir) -> PathBuf {
    let path = dir.path("model.safetensors");
    let bytes = file_bytes(
        &[
            ("w", "F32", &[2, 2], f32_bytes(&[1.0, 2.0, 3.0, 4.0])),
            ("d", "F64", &[1], 0.25f64.to_le_bytes().to_vec()),
            ("层", "U8", &[3], vec![7, 8, 9]),
        ],
        "\"__metadata__\":{\"format\":\"pt\"}",
    );
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn reads_views_infos_and_metadata() {
    let dir = TempDir::new("read");
    let path = sample(&dir);
    let st = SafeTensors::open(&path).unwrap();
    assert_eq!(st.len(), 3);
    assert_eq!(st.names().unwrap(), ["d", "w", "层"]);
    assert_eq!(st.find("w").unwrap(), Some(1));
    assert_eq!(st.find("nope").unwrap(), None);
    assert!(st.contains("层") && !st.contains("x"));
    let w = st.view("w").unwrap();
    assert_eq!(w.shape(), &[2, 2]);
    assert_eq!(w.dtype(), DType::F32);
    assert_eq!(w.to_vec::<f32>().unwrap(), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(w.to_vec::<i32>().unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(st.view("d").unwrap().bytes(), 0.25f64.to_le_bytes());
    assert_eq!(st.view("层").unwrap().bytes(), [7, 8, 9]);
    let info = st.info("w").unwrap();
    assert_eq!((info.name, info.dtype, info.shape, info.nbytes), ("w", "F32", &[2i64, 2][..], 16));
    assert_eq!(info.dsk_dtype, Some(DType::F32));
    assert_eq!(PathBuf::from(info.file), path);
    let raw = std::fs::read(&path).unwrap();
    assert_eq!(&raw[info.file_offset as usize..][..16], &f32_bytes(&[1.0, 2.0, 3.0, 4.0])[..]);
    assert_eq!(st.info("d").unwrap().dsk_dtype, None);
    assert_eq!(st.metadata("format").unwrap(), Some("pt"));
    assert_eq!(st.metadata("absent").unwrap(), None);
    assert_eq!(st.metadata_keys().unwrap(), ["format"]);
}

#[test]
fn views_feed_ops_and_tensors_outlive_the_handle() {
    let dir = TempDir::new("ops");
    let st = SafeTensors::open(sample(&dir)).unwrap();
    let ctx = Context::cpu().unwrap();
    let mut y = [0f32; 4];
    ctx.softmax(&st.view("w").unwrap(), &TensorMut::new(&mut y, &[2, 2]).unwrap(), 1.0).unwrap();
    assert!((y[0] + y[1] - 1.0).abs() < 1e-6);
    let t = st.tensor("w").unwrap();
    let m = st.to_dlpack("d").unwrap();
    assert_ne!(m.flags() & dsk::sys::DLPACK_FLAG_BITMASK_READ_ONLY, 0);
    let err = st.tensor("d").unwrap_err(); // f64: dsk refuses the import, the export is deleted
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    drop(st);
    assert!(t.is_read_only());
    assert_eq!(t.to_vec::<f32>().unwrap(), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(unsafe { *(m.dl_tensor().data as *const f64) }, 0.25);
}

#[test]
fn errors_have_kinds_and_name_the_file() {
    let dir = TempDir::new("err");
    let err = SafeTensors::open(dir.path("missing.safetensors")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(err.message().contains("missing.safetensors"), "{err}");
    let whole = std::fs::read(sample(&dir)).unwrap();
    let cut = dir.path("cut.safetensors");
    for k in 0..whole.len() {
        std::fs::write(&cut, &whole[..k]).unwrap();
        let err = SafeTensors::open(&cut).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{k}: {err}");
        assert!(err.message().contains("cut.safetensors"), "{err}");
    }
    let st = SafeTensors::open(sample(&dir)).unwrap();
    let err = st.view("missing").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("'missing'"), "{err}");
    assert_eq!(err.to_string(), format!("dsk: not found (9): {}", err.message()));
    assert_eq!(st.view("a\0b").unwrap_err().kind(), ErrorKind::InvalidArgument);
    let empty = TempDir::new("empty");
    assert_eq!(SafeTensors::open(&empty.0).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn a_sharded_index() {
    let dir = TempDir::new("shards");
    std::fs::write(dir.path("a.safetensors"), file_bytes(&[("x", "F32", &[1], f32_bytes(&[1.0]))], "")).unwrap();
    std::fs::write(dir.path("b.safetensors"), file_bytes(&[("y", "F32", &[1], f32_bytes(&[2.0]))], "")).unwrap();
    std::fs::write(dir.path("model.safetensors.index.json"),
                   r#"{"weight_map":{"x":"a.safetensors","y":"b.safetensors"}}"#).unwrap();
    let st = SafeTensors::open(dir.path("model.safetensors.index.json")).unwrap();
    assert_eq!(st.names().unwrap(), ["x", "y"]);
    assert_eq!(st.view("y").unwrap().to_vec::<f32>().unwrap(), [2.0]);
    assert!(st.info("y").unwrap().file.ends_with("b.safetensors"));
    let both = SafeTensors::open(&dir.0).unwrap();
    assert_eq!(both.len(), 2);
}

#[test]
fn misaligned_data_is_copied_not_borrowed() {
    let dir = TempDir::new("align");
    // Unpadded header plus a 1-byte tensor first: "x" starts at an odd address.
    let header = concat!(r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"#,
                         r#""x":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}}"#);
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.push(5);
    bytes.extend(f32_bytes(&[1.5, -3.0]));
    let path = dir.path("odd.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let st = SafeTensors::open(&path).unwrap();
    let x = st.view("x").unwrap();
    assert_ne!(x.bytes().as_ptr() as usize % 4, 0);
    assert_eq!(x.to_vec::<f32>().unwrap(), [1.5, -3.0]);
    let err = st.tensor("x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("not aligned"), "{err}");
    let copy = Context::cpu().unwrap().clone_tensor(&x, DType::F32).unwrap();
    assert_eq!(copy.to_vec::<f32>().unwrap(), [1.5, -3.0]);
}
