// Regression tests for inputs found by fuzzing (fuzz/); one TEST_CASE per finding.
#include <catch2/catch.hpp>
