# Installs libodl (static, and shared when ODL_BUILD_SHARED), odl_host, the
# headers, the `odl` tool, a CMake package (find_package(odl), targets
# odl::odl, odl::odl_shared, odl::odl_host, odl::odl_onnx) and a pkg-config file (odl.pc).
# Included from the top-level CMakeLists.txt; see docs/install.md.
include(CMakePackageConfigHelpers)

set(ODL_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/odl CACHE STRING
    "Where the odl CMake package files go, relative to the prefix")

set(ODL_INSTALL_TARGETS odl odl_host)
# odl_onnx (odl/onnx.h: ONNX import; links protobuf-c)
if(TARGET odl_onnx)
  list(APPEND ODL_INSTALL_TARGETS odl_onnx)
endif()
if(TARGET odl_shared)
  list(APPEND ODL_INSTALL_TARGETS odl_shared)
endif()

install(TARGETS ${ODL_INSTALL_TARGETS}
  EXPORT odlTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT devel
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT devel
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(TARGETS odl_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/odl
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT devel
  FILES_MATCHING PATTERN "*.h")

install(EXPORT odlTargets
  NAMESPACE odl::
  FILE odlTargets.cmake
  DESTINATION ${ODL_INSTALL_CMAKEDIR} COMPONENT devel)

configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/odlConfig.cmake.in
  ${PROJECT_BINARY_DIR}/odlConfig.cmake
  INSTALL_DESTINATION ${ODL_INSTALL_CMAKEDIR})
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/odlConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)  # 0.x: minor versions may break the API
install(FILES
  ${PROJECT_BINARY_DIR}/odlConfig.cmake
  ${PROJECT_BINARY_DIR}/odlConfigVersion.cmake
  DESTINATION ${ODL_INSTALL_CMAKEDIR} COMPONENT devel)

# pkg-config: relocatable (paths relative to the .pc file's own directory), so
# `cmake --install build --prefix /elsewhere` gives a working odl.pc.
foreach(kind LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${kind}}")
    set(ODL_PC_${kind} "${CMAKE_INSTALL_${kind}}")
  else()
    set(ODL_PC_${kind} "\${prefix}/${CMAKE_INSTALL_${kind}}")
  endif()
endforeach()
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(ODL_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH ODL_PC_UP "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
  string(REGEX REPLACE "/$" "" ODL_PC_UP "${ODL_PC_UP}")
  set(ODL_PC_PREFIX "\${pcfiledir}/${ODL_PC_UP}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/odl.pc.in ${PROJECT_BINARY_DIR}/odl.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/odl.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT devel)
