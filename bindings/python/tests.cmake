# ctest registration of the Python bindings (included from tests/CMakeLists.txt).
#   python.venv     fixture: creates ${PROJECT_BINARY_DIR}/python-venv with numpy>=2.1 and pytest
#                   (PyPI, at test time, reused when present)
#   python.pytest   bindings/python/tests against this build's libdsk
#   python.example  examples/python/example.py
#   python.example_sampling  examples/python/sampling.py
find_package(Python3 COMPONENTS Interpreter)
if(NOT Python3_Interpreter_FOUND)
  message(STATUS "dsk: no Python 3 interpreter; the Python binding tests are not registered")
  return()
endif()

set(_dsk_py_dir ${CMAKE_CURRENT_LIST_DIR})
set(_dsk_py_venv ${PROJECT_BINARY_DIR}/python-venv)
set(_dsk_py_env
  DSK_LIBRARY=$<TARGET_FILE:dsk>
  DSK_LAYOUT_MANIFEST=${PROJECT_BINARY_DIR}/capi/abi/layout.txt
  DSK_INCLUDE_DIR=${PROJECT_SOURCE_DIR}/include
  PYTHONPATH=${_dsk_py_dir}
  PYTHONDONTWRITEBYTECODE=1)

if(DSK_SANITIZE)
  # An ASan-instrumented libdsk can only be dlopen'ed by a process whose first library is the ASan
  # runtime, so the interpreter gets it preloaded. libstdc++ is preloaded too: python itself does
  # not link it, and ASan resolves its __cxa_throw interceptor at start-up, so without it the first
  # C++ exception inside libdsk (every error path) aborts with "real___cxa_throw != 0". Leak
  # checking is off: CPython keeps objects alive until exit by design, which LeakSanitizer would
  # report. Allocation failures return NULL as in the C suites (tests request impossible sizes).
  execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libasan.so
    OUTPUT_VARIABLE _dsk_libasan OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libstdc++.so
    OUTPUT_VARIABLE _dsk_libstdcxx OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT IS_ABSOLUTE "${_dsk_libasan}" OR NOT EXISTS "${_dsk_libasan}"
     OR NOT IS_ABSOLUTE "${_dsk_libstdcxx}" OR NOT EXISTS "${_dsk_libstdcxx}")
    message(STATUS "dsk: cannot locate libasan/libstdc++ of ${CMAKE_CXX_COMPILER}; "
                   "the Python binding tests are not registered in this sanitizer build")
    return()
  endif()
  list(APPEND _dsk_py_env
    "LD_PRELOAD=${_dsk_libasan}:${_dsk_libstdcxx}"
    ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=0
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
endif()

add_test(NAME python.venv
  COMMAND ${Python3_EXECUTABLE} ${_dsk_py_dir}/cmake/setup_venv.py ${_dsk_py_venv})
set_tests_properties(python.venv PROPERTIES
  FIXTURES_SETUP dsk_python_venv TIMEOUT 600 LABELS python
  # pip must not inherit a sanitizer preload from the calling environment.
  ENVIRONMENT "LD_PRELOAD=")

# -p no:cacheprovider keeps the source tree clean; pytest's exit 5 (nothing collected) is nonzero
# and so fails like any other error.
add_test(NAME python.pytest
  COMMAND ${_dsk_py_venv}/bin/python -m pytest -q -p no:cacheprovider ${_dsk_py_dir}/tests)
add_test(NAME python.example
  COMMAND ${_dsk_py_venv}/bin/python ${PROJECT_SOURCE_DIR}/examples/python/example.py)
add_test(NAME python.example_sampling
  COMMAND ${_dsk_py_venv}/bin/python ${PROJECT_SOURCE_DIR}/examples/python/sampling.py)
set_tests_properties(python.pytest python.example python.example_sampling PROPERTIES
  FIXTURES_REQUIRED dsk_python_venv
  ENVIRONMENT "${_dsk_py_env}"
  TIMEOUT 120
  LABELS python)
# FAIL_ (not PASS_) so that the exit status still counts.
set_tests_properties(python.example python.example_sampling PROPERTIES
  FAIL_REGULAR_EXPRESSION "False")
