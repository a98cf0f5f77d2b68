// seal/key_file.cpp: reading, checking and creating key files; the per-user key of key=auto.
#include "seal/key_file.hpp"

#include <sodium.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <peerbus/error.hpp>
#include <peerbus/key_file.hpp>
#include <stdexcept>
#include <system_error>

#ifndef _WIN32
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace peerbus::detail::seal {

namespace {

constexpr char hex_digits[] = "0123456789abcdef";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string octal_mode(unsigned mode) {
  std::string s = "0";
  for (int shift = 6; shift >= 0; shift -= 3) s += static_cast<char>('0' + ((mode >> shift) & 7));
  return s;
}

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

}  // namespace

void sodium_ready() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium could not be initialised");
}

key::~key() {
  sodium_memzero(bytes_.data(), bytes_.size());
}

key key::random() {
  sodium_ready();
  std::array<unsigned char, key_bytes> b;
  randombytes_buf(b.data(), b.size());
  key k(b);
  sodium_memzero(b.data(), b.size());
  return k;
}

std::uint32_t key_id(const key& k) {
  sodium_ready();
  static constexpr char label[] = "peerbus key id v1";
  unsigned char h[32];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(label), sizeof label - 1,
                     k.data(), key_bytes);
  return (std::uint32_t{h[0]} << 24) | (std::uint32_t{h[1]} << 16) | (std::uint32_t{h[2]} << 8) |
         std::uint32_t{h[3]};
}

std::string key_id_text(std::uint32_t id) {
  std::string s(8, '0');
  for (int i = 7; i >= 0; --i, id >>= 4) s[static_cast<std::size_t>(i)] = hex_digits[id & 15];
  return s;
}

std::string key_file_text(const key& k) {
  std::string s;
  s.reserve(2 * key_bytes + 1);
  for (std::size_t i = 0; i < key_bytes; ++i) {
    s += hex_digits[k.data()[i] >> 4];
    s += hex_digits[k.data()[i] & 15];
  }
  s += '\n';
  return s;
}

std::optional<key> parse_key_text(std::string_view text) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!text.empty() && ws(text.front())) text.remove_prefix(1);
  while (!text.empty() && ws(text.back())) text.remove_suffix(1);
  if (text.size() != 2 * key_bytes) return std::nullopt;
  std::array<unsigned char, key_bytes> b{};
  for (std::size_t i = 0; i < key_bytes; ++i) {
    int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    b[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  key k(b);
  sodium_memzero(b.data(), b.size());
  return k;
}

#ifndef _WIN32

key load_key_file(const std::string& path) {
  // O_NONBLOCK: a FIFO planted at the path must not hang the bus; fstat refuses it below.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT)
      throw config_error("key file " + path + " does not exist; create one with: peerbus keygen " +
                         path);
    throw config_error("cannot open key file " + path + ": " + std::strerror(err));
  }
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno(errno, "examining key file " + path);
  if (!S_ISREG(st.st_mode)) throw config_error("key file " + path + " is not a regular file");
  if (st.st_uid != ::geteuid())
    throw config_error("key file " + path + " belongs to uid " + std::to_string(st.st_uid) +
                       ", not to you (uid " + std::to_string(::geteuid()) +
                       "): a bus key must be private to its user; run: chown " +
                       std::to_string(::geteuid()) + " " + path +
                       " (as root), or create your own "
                       "with: peerbus keygen FILE");
  const unsigned mode = static_cast<unsigned>(st.st_mode) & 07777u;
  if (mode & 077u)
    throw config_error("key file " + path + " is open to group or others (mode " +
                       octal_mode(mode & 0777u) + "): anyone who can read it can read and forge " +
                       "the bus; run: chmod 600 " + path);
  char buf[256];
  std::size_t n = 0;
  for (;;) {
    ssize_t r = ::read(fd, buf + n, sizeof buf - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw_errno(errno, "reading key file " + path);
    if (r == 0) break;
    n += static_cast<std::size_t>(r);
    if (n == sizeof buf) break;  // longer than any key file: refused below
  }
  auto k = parse_key_text(std::string_view(buf, n));
  sodium_memzero(buf, sizeof buf);
  if (!k)
    throw config_error("key file " + path + " does not hold a peerbus key (64 hex digits); " +
                       "create one with: peerbus keygen " + path);
  return *k;
}

std::optional<key> try_create_key_file(const std::string& path, bool overwrite) {
  sodium_ready();
  key k = key::random();
  const std::string text = key_file_text(k);
  unsigned char rnd[8];
  randombytes_buf(rnd, sizeof rnd);
  std::string tmp = path + ".tmp-";
  for (unsigned char c : rnd) {
    tmp += hex_digits[c >> 4];
    tmp += hex_digits[c & 15];
  }
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) throw_errno(errno, "creating key file " + path);
  auto fail = [&](const std::string& what) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw_errno(err, what);
  };
  // Exactly 0600 whatever the umask: the loader refuses anything looser, and a tighter one
  // (0400) would be fine but surprising.
  if (::fchmod(fd, 0600) != 0) fail("setting the mode of key file " + path);
  for (std::size_t done = 0; done < text.size();) {
    ssize_t r = ::write(fd, text.data() + done, text.size() - done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail("writing key file " + path);
    done += static_cast<std::size_t>(r);
  }
  if (::fsync(fd) != 0) fail("writing key file " + path);
  ::close(fd);
  if (overwrite) {
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      throw_errno(err, "replacing key file " + path);
    }
    return k;
  }
  // link() is the O_EXCL of the final name: it fails if the name exists, and whoever reads the
  // name sees a complete file, never one being written.
  int linked = ::link(tmp.c_str(), path.c_str());
  int err = errno;
  ::unlink(tmp.c_str());
  if (linked == 0) return k;
  if (err == EEXIST) return std::nullopt;
  throw_errno(err, "creating key file " + path);
}

std::string auto_key_path(const char* xdg_runtime_dir) {
  if (!xdg_runtime_dir || !*xdg_runtime_dir)
    throw config_error(
        "key=auto keeps the key in $XDG_RUNTIME_DIR/peerbus/bus.key, but XDG_RUNTIME_DIR is not "
        "set (it is the per-user runtime directory, e.g. /run/user/" +
        std::to_string(::geteuid()) +
        "); set it, or name a key file: key=PATH (create one with: peerbus keygen PATH)");
  if (xdg_runtime_dir[0] != '/')
    throw config_error("key=auto: XDG_RUNTIME_DIR=" + std::string(xdg_runtime_dir) +
                       " is not an absolute path");
  return std::string(xdg_runtime_dir) + "/peerbus/bus.key";
}

key load_auto_key(const char* xdg_runtime_dir) {
  const std::string path = auto_key_path(xdg_runtime_dir);
  const std::string dir = path.substr(0, path.rfind('/'));
  if (::mkdir(dir.c_str(), 0700) == 0) {
    ::chmod(dir.c_str(), 0700);  // whatever the umask
  } else if (errno != EEXIST) {
    throw config_error("key=auto: cannot create " + dir + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0)
    throw config_error("key=auto: cannot examine " + dir + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) throw config_error("key=auto: " + dir + " is not a directory");
  if (st.st_uid != ::geteuid())
    throw config_error("key=auto: " + dir + " belongs to uid " + std::to_string(st.st_uid) +
                       ", not to you (uid " + std::to_string(::geteuid()) + ")");
  if (st.st_mode & 077)
    throw config_error("key=auto: " + dir + " is open to group or others (mode " +
                       octal_mode(static_cast<unsigned>(st.st_mode) & 0777u) +
                       "); run: chmod 700 " + dir);
  // Load, else create; a creation that lost the race reads the winner's key. Each round either
  // returns or saw the file exist and then vanish, so a few rounds are plenty.
  for (int round = 0;; ++round) {
    if (::access(path.c_str(), F_OK) == 0 || errno != ENOENT || round == 3)
      return load_key_file(path);
    if (auto k = try_create_key_file(path, false)) return *k;
  }
}

#else  // _WIN32: sealed buses need POSIX file ownership and modes (not built or tested here).

key load_key_file(const std::string& path) {
  throw config_error("key file " + path + ": sealed buses are not supported on Windows yet");
}
std::optional<key> try_create_key_file(const std::string& path, bool) {
  throw config_error("key file " + path + ": sealed buses are not supported on Windows yet");
}
std::string auto_key_path(const char*) {
  throw config_error("key=auto is not supported on Windows yet");
}
key load_auto_key(const char* d) {
  return load_key_file(auto_key_path(d));
}

#endif

key load_key(const std::string& spec) {
  if (spec == "auto") return load_auto_key(std::getenv("XDG_RUNTIME_DIR"));
  return load_key_file(spec);
}

}  // namespace peerbus::detail::seal

// ---------------------------------------------------------------------------------------------
// Public API (include/peerbus/key_file.hpp)

namespace peerbus {

std::optional<std::string> create_key_file(const std::string& path, bool overwrite) {
  auto k = detail::seal::try_create_key_file(path, overwrite);
  if (!k) return std::nullopt;
  return detail::seal::key_id_text(detail::seal::key_id(*k));
}

std::string key_file_id(const std::string& spec) {
  return detail::seal::key_id_text(detail::seal::key_id(detail::seal::load_key(spec)));
}

std::string auto_key_path() {
  return detail::seal::auto_key_path(std::getenv("XDG_RUNTIME_DIR"));
}

}  // namespace peerbus
