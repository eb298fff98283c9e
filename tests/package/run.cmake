# The steps of the package tests, as a portable script: cmake -DMODE=<mode> ... -P run.cmake
#
#   MODE=install       BUILD_DIR CONFIG PREFIX NOCUDA_PREFIX LIBDIR BACKEND_DIR
#                      installs the build into PREFIX, and again into NOCUDA_PREFIX without the CUDA
#                      module directory (a CPU-only machine, or a distribution that split it out)
#   MODE=find_package  PREFIX WORK_DIR SOURCE_DIR GENERATOR [MAKE_PROGRAM] C_COMPILER CXX_COMPILER
#                      [FLAGS] [CUDA_MODULE]
#                      configures, builds and runs tests/package/consumer against PREFIX
#   MODE=pkg_config    PREFIX LIBDIR WORK_DIR SOURCE C_COMPILER PKG_CONFIG [FLAGS]
#                      compiles consumer.c with `pkg-config --cflags --libs dsk` and runs it
#   MODE=run           PROGRAM [CUDA_MODULE]: runs a consumer built by an earlier find_package step
#
# CUDA_MODULE (absent|present|any) is passed on to the consumer, which checks what it finds.

cmake_minimum_required(VERSION 3.24)

# The consumers must load the installed libdsk and find (or miss) its module by themselves:
# nothing from the environment of the build that runs the tests may point elsewhere.
set(_clean_env --unset=LD_LIBRARY_PATH --unset=DSK_BACKEND_PATH --unset=DSK_BACKEND)

function(run_checked what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message("${out}")
  if(NOT rc EQUAL 0)
    list(JOIN ARGN " " cmd)
    message(FATAL_ERROR "${what} failed (${rc}): ${cmd}")
  endif()
endfunction()

function(run_consumer program)
  if(NOT CUDA_MODULE)
    set(CUDA_MODULE any)
  endif()
  run_checked("running ${program}" ${CMAKE_COMMAND} -E env ${_clean_env} ${program}
              --cuda-module=${CUDA_MODULE})
endfunction()

if(MODE STREQUAL "install")
  foreach(prefix IN ITEMS "${PREFIX}" "${NOCUDA_PREFIX}")
    file(REMOVE_RECURSE "${prefix}")
    run_checked("cmake --install" ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}"
                --config "${CONFIG}")
  endforeach()
  file(REMOVE_RECURSE "${NOCUDA_PREFIX}/${BACKEND_DIR}")
  foreach(file IN ITEMS include/dsk/dsk.h include/dsk/dsk.hpp ${LIBDIR}/cmake/dsk/dskConfig.cmake
                        ${LIBDIR}/cmake/dsk/dskConfigVersion.cmake ${LIBDIR}/pkgconfig/dsk.pc)
    if(NOT EXISTS "${PREFIX}/${file}")
      message(FATAL_ERROR "the install tree lacks ${file}")
    endif()
  endforeach()
  # Internal headers (lib/, capi/) must never reach users.
  file(GLOB_RECURSE _headers RELATIVE "${PREFIX}/include" "${PREFIX}/include/*")
  foreach(h IN LISTS _headers)
    if(NOT h MATCHES "^dsk/dsk[a-z_]*\\.(h|hpp)$")
      message(FATAL_ERROR "unexpected installed header include/${h}")
    endif()
  endforeach()

elseif(MODE STREQUAL "find_package")
  file(REMOVE_RECURSE "${WORK_DIR}")
  set(_args -S "${SOURCE_DIR}" -B "${WORK_DIR}" -G "${GENERATOR}" -DCMAKE_BUILD_TYPE=Release
            "-DCMAKE_PREFIX_PATH=${PREFIX}" "-DDSK_EXPECTED_PREFIX=${PREFIX}"
            "-DCMAKE_C_COMPILER=${C_COMPILER}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
            "-DCMAKE_C_FLAGS=${FLAGS}" "-DCMAKE_CXX_FLAGS=${FLAGS}")
  if(MAKE_PROGRAM)
    list(APPEND _args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
  endif()
  run_checked("configuring the consumer" ${CMAKE_COMMAND} ${_args})
  run_checked("building the consumer" ${CMAKE_COMMAND} --build "${WORK_DIR}")
  run_consumer("${WORK_DIR}/dsk_consumer_c")
  run_checked("running dsk_consumer_cpp" ${CMAKE_COMMAND} -E env ${_clean_env}
              "${WORK_DIR}/dsk_consumer_cpp")

elseif(MODE STREQUAL "pkg_config")
  file(REMOVE_RECURSE "${WORK_DIR}")
  file(MAKE_DIRECTORY "${WORK_DIR}")
  # PKG_CONFIG_LIBDIR replaces the default search path, so only the temporary prefix is seen.
  set(ENV{PKG_CONFIG_LIBDIR} "${PREFIX}/${LIBDIR}/pkgconfig")
  unset(ENV{PKG_CONFIG_PATH})
  # --static adds Libs.private, which a static libdsk needs and a shared one leaves empty.
  foreach(query IN ITEMS cflags libs)
    execute_process(COMMAND "${PKG_CONFIG}" --static --${query} dsk RESULT_VARIABLE rc
                    OUTPUT_VARIABLE ${query} ERROR_VARIABLE err OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "pkg-config --static --${query} dsk failed: ${err}")
    endif()
  endforeach()
  execute_process(COMMAND "${PKG_CONFIG}" --variable=libdir dsk OUTPUT_VARIABLE pc_libdir
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  message("pkg-config: --cflags '${cflags}' --libs '${libs}' libdir '${pc_libdir}'")
  # The prefix is chosen at install time (cmake --install --prefix, a wheel, a conda package), so
  # dsk.pc must describe where it lies, not where the build was configured to install.
  get_filename_component(_want "${PREFIX}/${LIBDIR}" REALPATH)
  get_filename_component(_have "${pc_libdir}" REALPATH)
  if(NOT _have STREQUAL _want)
    file(READ "${PREFIX}/${LIBDIR}/pkgconfig/dsk.pc" _pc)
    message(FATAL_ERROR "dsk.pc installed into ${PREFIX} points at libdir ${pc_libdir}: it is not "
                        "relocatable (derive prefix from \${pcfiledir}). dsk.pc:\n${_pc}")
  endif()
  separate_arguments(cflags UNIX_COMMAND "${cflags}")
  separate_arguments(libs UNIX_COMMAND "${libs}")
  separate_arguments(flags UNIX_COMMAND "${FLAGS}")
  set(_exe "${WORK_DIR}/dsk_consumer_pc")
  run_checked("compiling with pkg-config flags" "${C_COMPILER}" -std=c99 ${flags} ${cflags}
              "${SOURCE}" -o "${_exe}" ${libs} "-Wl,-rpath,${pc_libdir}")
  run_consumer("${_exe}")

elseif(MODE STREQUAL "run")
  run_consumer("${PROGRAM}")

else()
  message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()
