# ariq_add_test(NAME SOURCES a.c b.c LIBS x y LABELS unit [TIMEOUT s] [ARGS ...])
# Builds one test program and registers it with ctest under its labels.
# Tests run with ARIQ_SOURCE_DIR and ARIQ_BUILD_DIR in the environment so they
# can find scripts, binaries and the recorded ARI samples.
function(ariq_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS;ARGS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS})
  add_test(NAME ${name} COMMAND ${name} ${T_ARGS})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  set_tests_properties(${name} PROPERTIES
    LABELS "${T_LABELS}"
    TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "ARIQ_SOURCE_DIR=${ARIQ_SOURCE_DIR};ARIQ_BUILD_DIR=${CMAKE_BINARY_DIR};ARIQ_SHARED_ARI_DIR=${ARIQ_SHARED_ARI_DIR};ASAN_OPTIONS=detect_leaks=1:abort_on_error=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
endfunction()

# Adds every immediate subdirectory of the current source dir that has a
# CMakeLists.txt, so each area owns its own list and nobody edits a shared one.
function(ariq_add_subdirs)
  file(GLOB children LIST_DIRECTORIES true ${CMAKE_CURRENT_SOURCE_DIR}/*)
  list(SORT children)
  foreach(child ${children})
    if(IS_DIRECTORY ${child} AND EXISTS ${child}/CMakeLists.txt)
      add_subdirectory(${child})
    endif()
  endforeach()
endfunction()

# ariq_add_fuzz(NAME SOURCE file.c CORPUS dir)
# A fuzz target for one parser of outside input. With ARIQ_FUZZ=ON (clang) it
# is a libFuzzer binary `fuzz_NAME` (.ci/fuzz.sh runs each for a bounded time);
# in every build the same target also runs once over its seed corpus as the
# ctest `fuzz_NAME_corpus`, labelled fuzz (so ASan/UBSan builds replay it).
set(ARIQ_FUZZ_DRIVER ${CMAKE_CURRENT_LIST_DIR}/../tests/fuzz/fuzz_driver.c)
function(ariq_add_fuzz name)
  cmake_parse_arguments(F "" "SOURCE;CORPUS" "" ${ARGN})
  if(ARIQ_FUZZ)
    add_executable(fuzz_${name} ${F_SOURCE})
    target_link_libraries(fuzz_${name} PRIVATE ariq)
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    add_test(NAME fuzz_${name}_corpus COMMAND fuzz_${name} -runs=0 ${F_CORPUS})
    set_tests_properties(fuzz_${name}_corpus PROPERTIES LABELS fuzz TIMEOUT 120)
  else()
    ariq_add_test(fuzz_${name}_corpus SOURCES ${F_SOURCE} ${ARIQ_FUZZ_DRIVER}
                  LIBS ariq LABELS fuzz ARGS ${F_CORPUS})
  endif()
endfunction()
