#include <gtest/gtest.h>
TEST(Stub, Pending) {}
