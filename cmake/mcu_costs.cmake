# cmake -DIN=ports/cortex-m/baseline.txt -DOUT=odl_mcu_costs.h -P cmake/mcu_costs.cmake
# The Cortex-M4F firmware's recorded costs ("name value" lines, # comments) as
# a C table, so `odl info --budget` shows the measured numbers themselves (no
# copy to keep in step; tests/info_budget_test.sh compares them).
file(STRINGS "${IN}" lines)
set(body "")
set(n 0)
foreach(line IN LISTS lines)
  string(REGEX REPLACE "#.*" "" line "${line}")
  string(STRIP "${line}" line)
  if(line STREQUAL "")
    continue()
  endif()
  if(NOT line MATCHES "^([a-z0-9_]+)[ \t]+([0-9]+)$")
    message(FATAL_ERROR "${IN}: expected 'name value', got '${line}'")
  endif()
  string(APPEND body "    {\"${CMAKE_MATCH_1}\", ${CMAKE_MATCH_2}ULL},\n")
  math(EXPR n "${n} + 1")
endforeach()
file(WRITE "${OUT}.tmp"
  "/* Generated from ports/cortex-m/baseline.txt by cmake/mcu_costs.cmake: do not edit. */\n"
  "#define ODL_MCU_COSTS_N ${n}\n"
  "static const struct { const char *name; unsigned long long value; } odl_mcu_costs[${n} + 1] = {\n"
  "${body}    {0, 0}\n};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
