# cmake -D suptok_build_dir=... -D suptok_source_dir=... -D work_dir=... -D consumer_dir=...
#       -D generator=... -D cxx_compiler=... -D simd_arch=... -P run.cmake
# Every step must exit 0; the first that does not ends the script with FATAL_ERROR.
function(step what)
  message(STATUS "install_consumer: ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install_consumer: ${what} failed (${rc})")
  endif()
endfunction()

set(prefix ${work_dir}/prefix)
file(REMOVE_RECURSE ${prefix} ${work_dir}/package ${work_dir}/subdirectory)
step("install into ${prefix}" ${CMAKE_COMMAND} --install ${suptok_build_dir} --prefix ${prefix})

# Route 1: find_package(suptok CONFIG) from the prefix (the ISA installed with it);
# route 2: add_subdirectory of the source tree with this build's SUPTOK_SIMD_ARCH.
# No optimisation flags (empty build type): the consumer checks packaging, and compiles in half the
# time of a Release build.
set(common -G ${generator} -D CMAKE_CXX_COMPILER=${cxx_compiler} -D CMAKE_BUILD_TYPE=)
foreach(route package subdirectory)
  set(build ${work_dir}/${route})
  if(route STREQUAL "package")
    set(route_args -D CMAKE_PREFIX_PATH=${prefix})
  else()
    set(route_args -D SUPTOK_SOURCE_DIR=${suptok_source_dir} -D SUPTOK_SIMD_ARCH=${simd_arch})
  endif()
  step("${route}: configure" ${CMAKE_COMMAND} -S ${consumer_dir} -B ${build} ${common} ${route_args})
  if(route STREQUAL "package")
    file(STRINGS ${build}/CMakeCache.txt found REGEX "^suptok_DIR:")
    string(FIND "${found}" "${prefix}/" at)
    if(NOT at GREATER -1)
      message(FATAL_ERROR "install_consumer: package route found '${found}', not the package in ${prefix}")
    endif()
  endif()
  step("${route}: build" ${CMAKE_COMMAND} --build ${build})
  step("${route}: run" ${build}/consumer)
endforeach()
