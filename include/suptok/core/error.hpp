// suptok/core/error.hpp: the one error type and the one validation path.
//
// Every public entry point validates its arguments before touching any output and throws
// suptok::error whose message starts with the offending argument's name, e.g.
//   "suptok: heads[1].W_K: expected 4 x 8, got 4 x 7".
// Validation never modifies the caller's data.
#pragma once

#include <cstddef>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace suptok {

class error : public std::invalid_argument {
 public:
  error(std::string argument, const std::string& what)
      : std::invalid_argument("suptok: " + argument + ": " + what), argument_(std::move(argument)) {}
  // The name of the argument that failed validation ("U", "heads[0].W_Q", "params.temperature").
  const std::string& argument() const noexcept { return argument_; }

 private:
  std::string argument_;
};

namespace detail {

// Concatenates any streamable parts into one message.
template <class... Parts>
std::string message(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

// The single validation path: throws suptok::error naming `argument` when `ok` is false. The name
// and the message are built only then: `argument` is a string or anything streamable, such as
// element{"b", t} in a check repeated per element.
template <class Name, class... Parts>
void require(bool ok, const Name& argument, const Parts&... parts) {
  if (!ok) throw error(message(argument), message(parts...));
}

// The name "base[i]" of one element, for checks inside loops.
struct element {
  const char* base;
  std::size_t i;
  friend std::ostream& operator<<(std::ostream& os, const element& e) { return os << e.base << '[' << e.i << ']'; }
};

}  // namespace detail
}  // namespace suptok
