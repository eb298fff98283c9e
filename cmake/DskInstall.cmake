# Install rules: headers, libdsk, the exported CMake package (find_package(dsk) -> dsk::dsk) and a
# pkg-config file. The CUDA module installs itself into ${DSK_INSTALL_BACKEND_DIR} (cuda/).
include(CMakePackageConfigHelpers)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/dsk DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS dsk EXPORT dskTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

set(DSK_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/dsk)
install(EXPORT dskTargets NAMESPACE dsk:: DESTINATION ${DSK_CMAKE_DIR})
export(EXPORT dskTargets NAMESPACE dsk:: FILE ${PROJECT_BINARY_DIR}/dskTargets.cmake)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/dskConfig.cmake.in
  ${PROJECT_BINARY_DIR}/dskConfig.cmake INSTALL_DESTINATION ${DSK_CMAKE_DIR})
# 0.x releases promise compatibility within a minor version only.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/dskConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/dskConfig.cmake ${PROJECT_BINARY_DIR}/dskConfigVersion.cmake
  DESTINATION ${DSK_CMAKE_DIR})

if(BUILD_SHARED_LIBS)
  set(DSK_PC_LIBS_PRIVATE "")
else()
  set(DSK_PC_LIBS_PRIVATE "-lstdc++ -lpthread -ldl")
endif()
# Relocatable: the prefix is derived from where the .pc file lies, so `cmake --install --prefix X`
# and copied install trees work.
file(RELATIVE_PATH DSK_PC_PREFIX_FROM_PCDIR "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
string(REGEX REPLACE "/$" "" DSK_PC_PREFIX_FROM_PCDIR "${DSK_PC_PREFIX_FROM_PCDIR}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/dsk.pc.in ${PROJECT_BINARY_DIR}/dsk.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/dsk.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
