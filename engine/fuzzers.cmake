# libFuzzer targets (TANDEM_BUILD_FUZZERS=ON, clang only). Included by the
# top-level CMakeLists.txt instead of the normal build: each target compiles
# the engine sources it exercises itself, instrumented, and links neither
# OpenMP nor OpenBLAS. `tandem_fuzzers` builds them all.
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR
    "TANDEM_BUILD_FUZZERS needs clang: configure with CC=clang CXX=clang++")
endif()

set(TANDEM_FUZZ_FLAGS -fsanitize=fuzzer,address,undefined
  -fno-sanitize-recover=undefined -fno-omit-frame-pointer)

# tandem_fuzzer(NAME SOURCES... LIBS...): one libFuzzer binary.
function(tandem_fuzzer name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${TANDEM_FUZZ_FLAGS})
  target_link_options(${name} PRIVATE ${TANDEM_FUZZ_FLAGS})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS})
endfunction()

set(TANDEM_ENGINE_DIR ${CMAKE_CURRENT_LIST_DIR})
tandem_fuzzer(safetensors_fuzzer
  SOURCES ${TANDEM_ENGINE_DIR}/safetensors_fuzzer.cc
          ${TANDEM_ENGINE_DIR}/safetensors.cc
  LIBS absl::status absl::statusor absl::strings absl::span
       nlohmann_json::nlohmann_json)

add_custom_target(tandem_fuzzers DEPENDS safetensors_fuzzer)
