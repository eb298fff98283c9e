/* dsk_export.h - symbol export macro for the dsk C API.
 *
 * DSK_API marks every public function. libdsk is built with hidden visibility by default, so only
 * functions carrying DSK_API (and named dsk_*, enforced by the linker version script) are exported.
 */
#ifndef DSK_EXPORT_H_
#define DSK_EXPORT_H_

#if defined(_WIN32) && defined(DSK_SHARED)
#  if defined(DSK_BUILD)
#    define DSK_API __declspec(dllexport)
#  else
#    define DSK_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) || defined(__clang__)
#  define DSK_API __attribute__((visibility("default")))
#else
#  define DSK_API
#endif

#endif /* DSK_EXPORT_H_ */
