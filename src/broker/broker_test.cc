#include <gtest/gtest.h>

#include "broker/broker.h"
