# ABI gates (included from tests/capi/CMakeLists.txt), all labelled "abi":
#   capi.abi.symbols  exported symbols of libdsk == DSK_API declarations of include/dsk/*.h
#   capi.abi.c99      the C API used from a strict C99 program
#   capi.abi.headers  every public header compiles alone as C99 and C++17 (checked at build time)
#   capi.abi.abidiff  libdsk's ABI == the libabigail baseline capi/abi/libdsk.abi
#   capi.abi.layout   struct layouts and constant values == capi/abi/layout.txt, which covers every
#                     struct, field and constant the headers declare
# scripts/update-abi-baseline refreshes both committed baselines after a deliberate change.

find_package(Python3 COMPONENTS Interpreter)
set(DSK_ABI_DIR ${PROJECT_SOURCE_DIR}/capi/abi)
file(GLOB DSK_PUBLIC_C_HEADERS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/include/dsk/*.h)
set(DSK_STRICT_FLAGS -pedantic -Wall -Wextra -Werror)
if(NOT CMAKE_C_COMPILER_ID MATCHES "GNU|Clang" OR NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  message(STATUS "dsk: ABI tests need GCC or Clang flags; skipped for this compiler")
  return()
endif()

# --- capi.abi.c99 -----------------------------------------------------------------------------
add_executable(dsk_abi_c99 ${CMAKE_CURRENT_SOURCE_DIR}/abi/c99_program.c)
target_link_libraries(dsk_abi_c99 PRIVATE dsk)
set_target_properties(dsk_abi_c99 PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON
                                             C_EXTENSIONS OFF)
target_compile_options(dsk_abi_c99 PRIVATE ${DSK_STRICT_FLAGS})
add_test(NAME capi.abi.c99 COMMAND dsk_abi_c99)
set_tests_properties(capi.abi.c99 PROPERTIES LABELS abi)

# --- capi.abi.headers -------------------------------------------------------------------------
# One translation unit per header and language, so that a header leaning on something another
# header happened to include first fails the build. Each includes its header twice to check the
# include guard, and declares one name because ISO C forbids an empty translation unit.
set(_dsk_header_dir ${CMAKE_CURRENT_BINARY_DIR}/abi_headers)
set(_dsk_header_tus)
foreach(_header IN LISTS DSK_PUBLIC_C_HEADERS ITEMS ${PROJECT_SOURCE_DIR}/include/dsk/dsk.hpp)
  get_filename_component(_name ${_header} NAME)
  string(MAKE_C_IDENTIFIER ${_name} _id)
  set(_include "#include <dsk/${_name}>\n")
  set(_body "${_include}${_include}extern int dsk_header_check_${_id};\n")
  set(_exts cpp)
  if(_name MATCHES "\\.h$")
    list(APPEND _exts c)
  endif()
  foreach(_ext IN LISTS _exts)
    set(_tu ${_dsk_header_dir}/${_name}.${_ext})
    # file(CONFIGURE) rewrites only on change, so reconfiguring does not rebuild these.
    file(CONFIGURE OUTPUT ${_tu} CONTENT "${_body}" @ONLY)
    list(APPEND _dsk_header_tus ${_tu})
  endforeach()
endforeach()
add_library(dsk_abi_headers OBJECT ${_dsk_header_tus})
# Only the public include directory, as a user has it: nothing from lib/ may be reachable.
target_include_directories(dsk_abi_headers PRIVATE ${PROJECT_SOURCE_DIR}/include)
set_target_properties(dsk_abi_headers PROPERTIES
  C_STANDARD 99 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF
  CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF)
# Users compile with stricter warnings than -Wall; the headers (and dsk.hpp's inline code) must
# stay clean under the common ones too.
target_compile_options(dsk_abi_headers PRIVATE ${DSK_STRICT_FLAGS} -Wshadow -Wconversion
                                               $<$<COMPILE_LANGUAGE:C>:-Wstrict-prototypes>)
list(LENGTH _dsk_header_tus _dsk_header_tu_count)
add_test(NAME capi.abi.headers
  COMMAND ${CMAKE_COMMAND} "-DOBJECTS=$<JOIN:$<TARGET_OBJECTS:dsk_abi_headers>,|>"
          -DEXPECTED=${_dsk_header_tu_count} -P ${CMAKE_CURRENT_SOURCE_DIR}/abi/check_objects.cmake)
set_tests_properties(capi.abi.headers PROPERTIES LABELS abi)

# --- capi.abi.layout --------------------------------------------------------------------------
# Only the headers are needed to print layouts, so the program does not link libdsk.
add_executable(dsk_layout_manifest ${DSK_ABI_DIR}/layout_manifest.c)
target_include_directories(dsk_layout_manifest PRIVATE ${PROJECT_SOURCE_DIR}/include)
# C11 for _Alignof.
set_target_properties(dsk_layout_manifest PROPERTIES C_STANDARD 11 C_STANDARD_REQUIRED ON
                                                     C_EXTENSIONS OFF)
target_compile_options(dsk_layout_manifest PRIVATE ${DSK_STRICT_FLAGS})

if(NOT Python3_Interpreter_FOUND)
  message(WARNING "dsk: no Python 3 interpreter; capi.abi.symbols/layout/abidiff are not run")
  return()
endif()
set(_dsk_layout_txt ${PROJECT_BINARY_DIR}/capi/abi/layout.txt)
# The manifest of this build, for bindings tests to read without running anything. Missing
# entries are left to the test to report, so an unfinished header does not break the build.
add_custom_command(OUTPUT ${_dsk_layout_txt}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/capi/abi
  COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/check_layout.py
          --program $<TARGET_FILE:dsk_layout_manifest> --write ${_dsk_layout_txt} --allow-missing
          ${DSK_PUBLIC_C_HEADERS}
  DEPENDS dsk_layout_manifest ${PROJECT_SOURCE_DIR}/scripts/check_layout.py
  COMMENT "Writing the layout manifest capi/abi/layout.txt"
  VERBATIM)
add_custom_target(dsk_layout_txt ALL DEPENDS ${_dsk_layout_txt})
add_test(NAME capi.abi.layout
  COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/check_layout.py
          --program $<TARGET_FILE:dsk_layout_manifest> --expected ${DSK_ABI_DIR}/layout.txt
          ${DSK_PUBLIC_C_HEADERS})
set_tests_properties(capi.abi.layout PROPERTIES LABELS abi)

# The symbol and libabigail checks read a shared library; a static libdsk has no dynamic symbols.
if(BUILD_SHARED_LIBS)
  set(_dsk_nm ${CMAKE_NM})
  if(NOT _dsk_nm)
    set(_dsk_nm nm)
  endif()
  add_test(NAME capi.abi.symbols
    COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/check_symbols.py
            --nm ${_dsk_nm} --library $<TARGET_FILE:dsk> ${DSK_PUBLIC_C_HEADERS})

  find_program(DSK_ABIDIFF abidiff)
  if(NOT DSK_ABIDIFF)
    # The script reports the skip with the reason; the test still shows up in the summary.
    set(DSK_ABIDIFF abidiff)
  endif()
  add_test(NAME capi.abi.abidiff
    COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/abi_baseline.py check
            --library $<TARGET_FILE:dsk> --abidiff ${DSK_ABIDIFF}
            --headers-dir ${PROJECT_SOURCE_DIR}/include/dsk --baseline ${DSK_ABI_DIR}/libdsk.abi)
  set_tests_properties(capi.abi.abidiff PROPERTIES SKIP_RETURN_CODE 77)
  set_tests_properties(capi.abi.symbols capi.abi.abidiff PROPERTIES LABELS abi)
endif()
