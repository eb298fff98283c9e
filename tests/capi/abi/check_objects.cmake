# cmake -DOBJECTS="a.o|b.o|..." -DEXPECTED=<n> -P check_objects.cmake
#
# The header self-containment check happens when the dsk_abi_headers object library compiles (a
# header that is not self-contained breaks the build). This script only makes that visible in the
# test summary: it fails when the objects are missing, e.g. after `make dsk_test_capi` alone.
string(REPLACE "|" ";" _objects "${OBJECTS}")
list(LENGTH _objects _count)
if(NOT _count EQUAL EXPECTED)
  message(FATAL_ERROR "expected ${EXPECTED} header check objects, got ${_count}: ${OBJECTS}")
endif()
set(_missing)
foreach(_object IN LISTS _objects)
  if(NOT EXISTS "${_object}")
    list(APPEND _missing "${_object}")
  endif()
endforeach()
if(_missing)
  list(JOIN _missing "\n  " _text)
  message(FATAL_ERROR "not built (build the dsk_abi_headers target):\n  ${_text}")
endif()
message(STATUS "${_count} header translation units (C99 and C++17) compiled")
