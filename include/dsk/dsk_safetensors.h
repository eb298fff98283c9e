/* dsk_safetensors.h - zero-copy reading of safetensors checkpoints (one file or a sharded index).
 *
 * A dsk_safetensors handle maps one or more .safetensors files read-only into memory (POSIX mmap)
 * and validates every header field when it is opened, so a malformed or truncated file is a clear
 * error from dsk_safetensors_open and never a crash later. Tensors are then borrowed as CPU
 * DLTensor views straight into the mapping: nothing is copied or converted. The format
 * (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N, N bytes
 * of UTF-8 JSON mapping each tensor name to {"dtype", "shape", "data_offsets": [begin, end)}
 * (plus an optional "__metadata__" map of strings), then the data section. What is checked:
 *  - the file holds at least 8 bytes, N is at most DSK_SAFETENSORS_MAX_HEADER_BYTES and at most
 *    the bytes that follow, and the header is valid UTF-8 JSON: an object of objects, with no key
 *    repeated in any object;
 *  - each entry has a known "dtype" string, a "shape" array of integers in [0, 2^63) and
 *    "data_offsets" [begin, end] with begin <= end <= the data section's size; the shape's product
 *    times the element size neither overflows nor differs from end - begin (other keys in an entry
 *    are ignored, as the reference implementation does);
 *  - the tensors, sorted by offset, tile the data section exactly: the first begins at 0, each
 *    begins where the previous one ends (no overlap, no hole), and the last ends at the end of the
 *    file (the reference implementation rejects the same files);
 *  - "__metadata__", when present, maps strings to strings;
 *  - names are unique, within a file and across the shards of an index, and like metadata
 *    strings hold no NUL character (a \u0000 escape), which C strings could not carry.
 * Byte order is little-endian, as the format prescribes; dsk runs on little-endian hosts only.
 *
 * Alignment: the format does not align tensor data. Writers that follow the reference pad the
 * header to a multiple of 8 bytes and order tensors by decreasing alignment, so their tensors are
 * aligned for their dtype, but nothing guarantees it. The mapping starts on a page boundary, so a
 * view is aligned to N bytes exactly when its dsk_safetensors_info.file_offset is a multiple of
 * N. dsk's ops expect element-aligned data; dsk_copy and dsk_tensor_clone read any alignment, so
 * clone a misaligned view before passing it to an op (or to code that dereferences typed
 * pointers).
 *
 * Lifetime and threads: views from dsk_safetensors_tensor, names, shapes, metadata strings and
 * info pointers stay valid until dsk_safetensors_close. dsk_safetensors_to_dlpack exports an
 * owning DLPack tensor that keeps its file mapped even after the handle is closed. The handle is
 * immutable once opened: every function except dsk_safetensors_close may be called from any
 * number of threads at once. The mapping is PROT_READ: writing through a view is undefined
 * behaviour (a segmentation fault in practice), so never pass a view as an op's output. The files
 * must not be truncated or rewritten while mapped (reading a page the file no longer covers
 * raises SIGBUS); replacing a file by renaming another over it is safe.
 */
#ifndef DSK_SAFETENSORS_H_
#define DSK_SAFETENSORS_H_

#include <stddef.h>
#include <stdint.h>

#include "dsk_dlpack.h"
#include "dsk_export.h"
#include "dsk_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest header accepted, in bytes (the reference implementation's limit). */
#define DSK_SAFETENSORS_MAX_HEADER_BYTES 100000000

typedef struct dsk_safetensors dsk_safetensors;

/* Opens `path` and validates everything (see the top of this file). `path` is
 *  - a file whose name ends in ".json": a sharded index such as model.safetensors.index.json, an
 *    object whose "weight_map" maps each tensor name to the shard file holding it. Shard names are
 *    relative to the index's directory and may not be absolute or contain "..". Each shard is
 *    opened once; every tensor the weight_map names must be in the shard it names, and the
 *    handle holds every tensor of every shard (one the weight_map omits too). Other keys, such as
 *    "metadata", are ignored;
 *  - a directory: its model.safetensors.index.json if present, else its only
 *    *.safetensors.index.json (several are an error naming them), else all of its *.safetensors
 *    files (not recursive) opened together like the shards of an index;
 *  - any other file: one .safetensors file.
 * Errors: DSK_ERR_INVALID_ARGUMENT (NULL path or out; malformed content, with a message naming the
 * file, the tensor and the field), DSK_ERR_IO (a file or directory cannot be opened, inspected or
 * mapped; the message names the path and the system's reason), DSK_ERR_NOT_FOUND (a directory
 * without safetensors files), DSK_ERR_OUT_OF_MEMORY. *out is NULL on failure. */
DSK_API dsk_status dsk_safetensors_open(const char* path, dsk_safetensors** out);

/* Unmaps the files (those an export from dsk_safetensors_to_dlpack still uses stay mapped until its
 * deleter runs) and frees the handle. Every pointer obtained from it becomes invalid. NULL is
 * ignored. Not thread-safe with other calls on the same handle. */
DSK_API void dsk_safetensors_close(dsk_safetensors* st);

/* The number of tensors. Errors: DSK_ERR_INVALID_ARGUMENT (NULL). */
DSK_API dsk_status dsk_safetensors_count(const dsk_safetensors* st, int64_t* count);

/* The name of tensor `index` in [0, count). Tensors are sorted by name, byte by byte (UTF-8 code
 * point order), so the order does not depend on the files' layout. *name lives as long as the
 * handle. Errors: DSK_ERR_INVALID_ARGUMENT (NULL, index out of range). */
DSK_API dsk_status dsk_safetensors_name(const dsk_safetensors* st, int64_t index,
                                        const char** name);

/* The index of tensor `name` (the inverse of dsk_safetensors_name).
 * Errors: DSK_ERR_INVALID_ARGUMENT (NULL), DSK_ERR_NOT_FOUND (no such tensor; *index is -1). */
DSK_API dsk_status dsk_safetensors_find(const dsk_safetensors* st, const char* name,
                                        int64_t* index);

/* Fills *out with a borrowed view of tensor `name`: data points into the read-only mapping,
 * device is {kDLCPU, 0}, dtype is the safetensors dtype's DLPack type (F64 {kDLFloat, 64},
 * F32, F16, BF16 {kDLBfloat, 16}, F8_E4M3 {kDLFloat8_e4m3fn, 8}, F8_E5M2 {kDLFloat8_e5m2, 8},
 * F8_E8M0 {kDLFloat8_e8m0fnu, 8}, I64, I32, I16, I8 {kDLInt, bits}, U64, U32, U16, U8 {kDLUInt,
 * bits}, BOOL {kDLBool, 8}, C64 {kDLComplex, 64}), shape points to ndim sizes owned by the
 * handle (do not modify them), strides is NULL (row-major) and byte_offset is 0. Valid until
 * dsk_safetensors_close. Never write through it (see the top of this file). dsk ops accept the
 * view as an input when its dtype is one of dsk's (dsk_dtype.h).
 * Errors: DSK_ERR_INVALID_ARGUMENT (NULL), DSK_ERR_NOT_FOUND (no such tensor),
 * DSK_ERR_UNSUPPORTED (F4, F6_E2M3 or F6_E3M2: packed sub-byte types that a DLTensor cannot
 * describe; dsk_safetensors_tensor_info still reports their bytes). */
DSK_API dsk_status dsk_safetensors_tensor(const dsk_safetensors* st, const char* name,
                                          DLTensor* out);

/* Where and how a tensor is stored. Initialize with dsk_safetensors_info_init; fields are only
 * ever appended. Every pointer is owned by the handle and lives until dsk_safetensors_close. */
typedef struct dsk_safetensors_info {
  uint32_t struct_size;
  int32_t ndim;
  int32_t dtype_id;     /* DSK_DTYPE_* of the dtype, 0 when dsk has no such type (F64, I16...) */
  int32_t reserved;     /* 0 */
  const char* name;     /* the tensor's name */
  const char* dtype;    /* the safetensors dtype string: "BF16", "F8_E4M3", ... */
  const int64_t* shape; /* ndim sizes */
  const char* file;     /* path of the file holding it (the shard path, for an index) */
  uint64_t file_offset; /* offset of its first byte in that file */
  uint64_t nbytes;      /* its size in bytes */
} dsk_safetensors_info;

DSK_API dsk_status dsk_safetensors_info_init(dsk_safetensors_info* info);

/* Describes tensor `name` without making a view; works for every dtype, F4 and F6 included.
 * Errors: DSK_ERR_INVALID_ARGUMENT (NULL), DSK_ERR_VERSION_MISMATCH (struct_size too small),
 * DSK_ERR_NOT_FOUND (no such tensor). */
DSK_API dsk_status dsk_safetensors_tensor_info(const dsk_safetensors* st, const char* name,
                                               dsk_safetensors_info* info);

/* Exports tensor `name` as an owning, read-only DLPack tensor: the same view as
 * dsk_safetensors_tensor (version {1, 1}, flags DLPACK_FLAG_BITMASK_READ_ONLY, strides NULL),
 * which keeps its file mapped until the deleter runs, even after dsk_safetensors_close. Call the
 * deleter exactly once, from any thread. dsk_tensor_from_dlpack_versioned turns it into a
 * read-only dsk_tensor when the dtype and ndim are ones dsk supports; other frameworks take it
 * as it is (NumPy's and PyTorch's from_dlpack).
 * Errors: DSK_ERR_INVALID_ARGUMENT (NULL), DSK_ERR_NOT_FOUND, DSK_ERR_UNSUPPORTED (as for
 * dsk_safetensors_tensor), DSK_ERR_OUT_OF_MEMORY. */
DSK_API dsk_status dsk_safetensors_to_dlpack(const dsk_safetensors* st, const char* name,
                                             DLManagedTensorVersioned** out);

/* The value of key `key` in the "__metadata__" maps. For several files (an index or a directory),
 * the first file holding the key wins, files taken in the order of their paths. *value lives as
 * long as the handle. Errors: DSK_ERR_INVALID_ARGUMENT (NULL), DSK_ERR_NOT_FOUND (no such key). */
DSK_API dsk_status dsk_safetensors_metadata(const dsk_safetensors* st, const char* key,
                                            const char** value);

/* The number of distinct metadata keys, and key `index` of them in [0, count), sorted like tensor
 * names. Errors: DSK_ERR_INVALID_ARGUMENT (NULL, index out of range). */
DSK_API dsk_status dsk_safetensors_metadata_count(const dsk_safetensors* st, int64_t* count);
DSK_API dsk_status dsk_safetensors_metadata_key(const dsk_safetensors* st, int64_t index,
                                                const char** key);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DSK_SAFETENSORS_H_ */
