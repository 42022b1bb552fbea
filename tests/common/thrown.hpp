// What a call threw: the argument a suptok::error named and its full message ("<no error>" when
// the call returned). Used by the tests of every module that checks error names and messages.
#pragma once

#include <suptok/core/error.hpp>

#include <string>

namespace suptok::test {

struct thrown {
  std::string argument = "<no error>";
  std::string message;
  bool contains(const std::string& part) const { return message.find(part) != std::string::npos; }
};

template <class F>
thrown thrown_by(F&& f) {
  thrown t;
  try {
    f();
  } catch (const suptok::error& e) {
    t.argument = e.argument();
    t.message = e.what();
  }
  return t;
}

}  // namespace suptok::test
