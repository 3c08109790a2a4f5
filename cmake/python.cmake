# The Python binding (docs/python.md): libodl_py.so — the core, the host I/O
# and the flat C API (src/host/capi.c, include/odl/capi.h) in one shared
# library that ctypes loads — and the pure-Python package python/odl.
# Included from the top-level CMakeLists.txt after ODL_CORE_SOURCES and
# ODL_HOST_SOURCES are set (and after cmake/install.cmake or before: it only
# adds its own install rules).
option(ODL_BUILD_PYTHON "Build libodl_py.so and install the Python package" ON)

if(ODL_BUILD_PYTHON)
  add_library(odl_py SHARED ${ODL_CORE_SOURCES} ${ODL_HOST_SOURCES})
  set_target_properties(odl_py PROPERTIES
    OUTPUT_NAME odl_py
    POSITION_INDEPENDENT_CODE ON
    VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR})
  target_include_directories(odl_py PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(odl_py PRIVATE m ZLIB::ZLIB)

  # Where the package goes, relative to the prefix. Debian's /usr/bin/python3
  # searches <prefix>/lib/python3/dist-packages for prefix /usr and
  # /usr/local/lib/python3.X/dist-packages for /usr/local (and any prefix is
  # given the same layout, so PYTHONPATH=<prefix>/lib/python3.X/dist-packages
  # works for a private one).
  if(NOT DEFINED ODL_PYTHON_INSTALL_DIR)
    set(_odl_pyver "")
    find_program(ODL_PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
    if(NOT ODL_PYTHON3)
      find_program(ODL_PYTHON3 NAMES python3)
    endif()
    if(ODL_PYTHON3)
      execute_process(COMMAND ${ODL_PYTHON3} -c "import sys; print('%d.%d' % sys.version_info[:2])"
        OUTPUT_VARIABLE _odl_pyver OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    endif()
    if(CMAKE_INSTALL_PREFIX STREQUAL "/usr" OR _odl_pyver STREQUAL "")
      set(_odl_pydir lib/python3/dist-packages)
    else()
      set(_odl_pydir lib/python${_odl_pyver}/dist-packages)
    endif()
    set(ODL_PYTHON_INSTALL_DIR ${_odl_pydir} CACHE STRING
        "Where the odl Python package is installed, relative to the prefix")
  endif()

  # The installed package finds libodl_py.so and bin/odl relative to itself,
  # so `cmake --install build --prefix /elsewhere` works too.
  if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
    set(_odl_libdir_rel "${CMAKE_INSTALL_LIBDIR}")
  else()
    file(RELATIVE_PATH _odl_libdir_rel "/p/${ODL_PYTHON_INSTALL_DIR}/odl" "/p/${CMAKE_INSTALL_LIBDIR}")
  endif()
  if(IS_ABSOLUTE "${CMAKE_INSTALL_BINDIR}")
    set(_odl_bindir_rel "${CMAKE_INSTALL_BINDIR}")
  else()
    file(RELATIVE_PATH _odl_bindir_rel "/p/${ODL_PYTHON_INSTALL_DIR}/odl" "/p/${CMAKE_INSTALL_BINDIR}")
  endif()
  file(WRITE ${PROJECT_BINARY_DIR}/python/_install.py
    "# Written by cmake/python.cmake at configure time: paths relative to this package.\n"
    "LIBDIR = \"${_odl_libdir_rel}\"\n"
    "BINDIR = \"${_odl_bindir_rel}\"\n"
    "VERSION = \"${PROJECT_VERSION}\"\n")

  install(TARGETS odl_py
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT runtime)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/python/odl
    DESTINATION ${ODL_PYTHON_INSTALL_DIR} COMPONENT runtime
    FILES_MATCHING PATTERN "*.py" PATTERN "__pycache__" EXCLUDE)
  install(FILES ${PROJECT_BINARY_DIR}/python/_install.py
    DESTINATION ${ODL_PYTHON_INSTALL_DIR}/odl COMPONENT runtime)
endif()
