// The tuning cache and its file (see kernel_tuning.h, TuningCache, for the
// rules). The path comes from the user, who may also point it at something
// that is not ours (a text file, a device, a FIFO, a link planted by someone
// else), share it between processes, or append to it by hand.
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "delegate/tuning/kernel_tuning.h"

namespace cocopie {
namespace {

// Superseded lines tolerated before a file is compacted.
constexpr int kMinDuplicatesToCompact = 64;
// Tries at reading or writing the file while other processes replace it.
constexpr int kSaveAttempts = 4;

std::string ErrnoText() { return std::strerror(errno); }

// Closes the descriptor (releasing its lock) when it goes out of scope.
class FileDescriptor {
 public:
  FileDescriptor() = default;
  ~FileDescriptor() { Reset(-1); }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }
  void Reset(int fd) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

const char* KindOf(mode_t mode) {
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

enum class Opened { kOk, kMissing, kNotWritable, kRefused };

// Opens the cache file without following a link and without blocking.
// Anything but a regular file is refused before it is opened (opening a
// device may act on it), and again after (it may have been swapped).
Opened OpenCacheFile(const std::string& path, bool for_writing, FileDescriptor* out,
                     std::string* problem) {
  struct stat before;
  if (lstat(path.c_str(), &before) != 0) {
    if (errno == ENOENT) return Opened::kMissing;
    *problem = "cannot be examined (" + ErrnoText() + ")";
    return Opened::kRefused;
  }
  if (!S_ISREG(before.st_mode)) {
    *problem = std::string("is ") + KindOf(before.st_mode);
    return Opened::kRefused;
  }
  const int mode = for_writing ? O_RDWR | O_APPEND : O_RDONLY;
  const int fd = open(path.c_str(), mode | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Opened::kMissing;
    *problem = "cannot be opened" + std::string(for_writing ? " for writing" : "") + " (" +
               ErrnoText() + ")";
    const bool denied = errno == EACCES || errno == EPERM || errno == EROFS;
    return for_writing && denied ? Opened::kNotWritable : Opened::kRefused;
  }
  out->Reset(fd);
  struct stat after;
  if (fstat(fd, &after) != 0 || !S_ISREG(after.st_mode) || after.st_ino != before.st_ino ||
      after.st_dev != before.st_dev) {
    out->Reset(-1);
    *problem = "was replaced while being opened";
    return Opened::kRefused;
  }
  return Opened::kOk;
}

// True when `fd` is still the file at `path` (a compaction by another
// process may have renamed a new file over it while we waited for the lock).
bool StillAt(int fd, const std::string& path) {
  struct stat open_file, named;
  return fstat(fd, &open_file) == 0 && lstat(path.c_str(), &named) == 0 &&
         open_file.st_ino == named.st_ino && open_file.st_dev == named.st_dev;
}

// Reads the whole file, refusing one larger than kMaxTuningCacheBytes.
bool ReadAll(int fd, std::string* text, std::string* problem) {
  const std::string too_large =
      "is larger than " + std::to_string(kMaxTuningCacheBytes >> 20) + " MiB";
  struct stat info;
  if (fstat(fd, &info) != 0) {
    *problem = "cannot be examined (" + ErrnoText() + ")";
    return false;
  }
  if (static_cast<unsigned long long>(info.st_size) > kMaxTuningCacheBytes) {
    *problem = too_large;
    return false;
  }
  text->clear();
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = pread(fd, buffer, sizeof(buffer), static_cast<off_t>(text->size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *problem = "cannot be read (" + ErrnoText() + ")";
      return false;
    }
    if (n == 0) return true;
    if (text->size() + static_cast<size_t>(n) > kMaxTuningCacheBytes) {
      *problem = too_large;  // it grew while being read
      return false;
    }
    text->append(buffer, static_cast<size_t>(n));
  }
}

struct ParsedCache {
  std::map<std::string, std::string> lines;  // key -> record hex
  int bad_lines = 0;
  int duplicates = 0;
  bool obsolete = false;  // an older release's cache: nothing in it is read
};

// Parses a cache file's text. False (with *problem) for a file that is not a
// tuning cache: anything non-empty whose first line is not the header.
bool ParseCache(const std::string& text, ParsedCache* parsed, std::string* problem) {
  if (text.compare(0, std::strlen(kTuningCacheV1Header), kTuningCacheV1Header) == 0) {
    parsed->obsolete = true;
    return true;
  }
  const size_t header_length = std::strlen(kTuningCacheHeader);
  if (!text.empty() && text.compare(0, header_length, kTuningCacheHeader) != 0) {
    *problem = "is not a cocopie tuning cache (its first line is not \"" +
               std::string(kTuningCacheHeader) + "...\")";
    return false;
  }
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    // A last line without its newline may be one another process is
    // appending right now: used if it reads well, never counted as bad.
    const bool last = end == std::string::npos;
    if (last) end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    const size_t tab = line.find('\t');
    std::vector<TuningRecordEntry> entries;
    std::string error;
    if (tab == std::string::npos || tab == 0 ||
        !DecodeTuningRecordHex(line.substr(tab + 1), &entries, &error) || entries.size() != 1) {
      if (!last) ++parsed->bad_lines;
      continue;
    }
    const std::string key = line.substr(0, tab);
    if (parsed->lines.count(key) != 0) ++parsed->duplicates;
    parsed->lines[key] = line.substr(tab + 1);
  }
  return true;
}

std::string FormatLine(const std::string& key, const std::string& hex) {
  return key + '\t' + hex + '\n';
}

std::string HeaderLine() {
  return std::string(kTuningCacheHeader) +
         ": <layer signature|cpu|threads>\t<tuning record hex>\n";
}

bool WriteFully(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

enum class Placed { kOk, kExists, kFailed };

// Writes a whole cache to a private temporary file beside `path` (mkstemp: a
// name no one can predict, created with O_EXCL, mode 0600) and puts it in
// place: linked when `replace` is false (never over a file that appeared
// meanwhile), renamed over the old file otherwise.
Placed WriteWhole(const std::string& path, const std::map<std::string, std::string>& lines,
                  bool replace, std::string* problem) {
  const size_t slash = path.rfind('/');
  const std::string folder = slash == std::string::npos ? "." : path.substr(0, slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string temporary = folder + "/." + base + ".XXXXXX";
  const int fd = mkostemp(&temporary[0], O_CLOEXEC);
  if (fd < 0) {
    *problem = "cannot be written: no temporary file beside it (" + ErrnoText() + ")";
    return Placed::kFailed;
  }
  std::string text = HeaderLine();
  for (const auto& line : lines) text += FormatLine(line.first, line.second);
  bool ok = WriteFully(fd, text) && fsync(fd) == 0;
  ok = close(fd) == 0 && ok;
  Placed placed = Placed::kFailed;
  if (!ok) {
    *problem = "cannot be written (" + ErrnoText() + ")";
  } else if (replace ? rename(temporary.c_str(), path.c_str()) == 0
                     : link(temporary.c_str(), path.c_str()) == 0) {
    placed = Placed::kOk;
  } else if (!replace && errno == EEXIST) {
    placed = Placed::kExists;
  } else {
    *problem = "cannot be put in place (" + ErrnoText() + ")";
  }
  unlink(temporary.c_str());  // after link(), or after a failure
  return placed;
}

}  // namespace

void TuningCache::GiveUpFile(const std::string& why, std::vector<std::string>* warnings) {
  use_file_ = false;
  warnings->push_back("tuning cache " + path_ + " " + why +
                      "; left as it is: tunings are kept in memory only");
}

void TuningCache::Load(std::vector<std::string>* warnings) {
  if (loaded_) return;
  loaded_ = true;
  if (path_.empty()) return;
  std::string problem;
  for (int attempt = 0; attempt < kSaveAttempts; ++attempt) {
    FileDescriptor fd;
    const Opened opened = OpenCacheFile(path_, false, &fd, &problem);
    if (opened == Opened::kMissing) return;  // an empty cache
    if (opened != Opened::kOk) break;
    if (flock(fd.get(), LOCK_SH) != 0) {
      problem = "cannot be locked (" + ErrnoText() + ")";
      break;
    }
    if (!StillAt(fd.get(), path_)) continue;
    std::string text;
    ParsedCache parsed;
    if (!ReadAll(fd.get(), &text, &problem) || !ParseCache(text, &parsed, &problem)) break;
    lines_ = std::move(parsed.lines);
    if (parsed.obsolete) {
      warnings->push_back("tuning cache " + path_ + " was written by an older release; "
                          "its entries are not read and it will be rewritten");
    }
    if (parsed.bad_lines > 0) {
      warnings->push_back("tuning cache " + path_ + ": ignored " +
                          std::to_string(parsed.bad_lines) + " unreadable line(s)");
    }
    return;
  }
  if (problem.empty()) problem = "keeps being replaced by another process";
  GiveUpFile(problem, warnings);
}

bool TuningCache::Lookup(const std::string& key, KernelTuning* tuning,
                         std::vector<std::string>* warnings) {
  Load(warnings);
  const auto it = lines_.find(key);
  if (it == lines_.end()) return false;
  std::vector<TuningRecordEntry> entries;
  std::string error;
  if (!DecodeTuningRecordHex(it->second, &entries, &error)) return false;
  *tuning = entries[0].tuning;
  return true;
}

void TuningCache::Store(const std::string& key, const KernelTuning& tuning, int threads,
                        std::vector<std::string>* warnings) {
  Load(warnings);
  TuningRecordEntry entry;
  entry.target = PatternConvSimdTarget();
  entry.tuning = tuning;
  entry.threads = threads;
  lines_[key] = TuningRecordHex({entry});
  if (path_.empty() || !use_file_) return;
  const std::string problem = Save(key);
  if (!problem.empty()) GiveUpFile(problem, warnings);
}

std::string TuningCache::Save(const std::string& key) {
  std::string problem;
  for (int attempt = 0; attempt < kSaveAttempts; ++attempt) {
    FileDescriptor fd;
    const Opened opened = OpenCacheFile(path_, true, &fd, &problem);
    if (opened == Opened::kMissing) {
      const Placed placed = WriteWhole(path_, lines_, false, &problem);
      if (placed == Placed::kExists) continue;  // created meanwhile: add to it
      return placed == Placed::kOk ? "" : problem;
    }
    if (opened != Opened::kOk) return problem;
    if (flock(fd.get(), LOCK_EX) != 0) return "cannot be locked (" + ErrnoText() + ")";
    if (!StillAt(fd.get(), path_)) continue;
    // Under the lock: what other processes wrote since we loaded is merged
    // in (their entries win but for `key`, just timed here).
    std::string text;
    ParsedCache parsed;
    if (!ReadAll(fd.get(), &text, &problem) || !ParseCache(text, &parsed, &problem)) {
      return problem;
    }
    const std::string ours = lines_[key];
    for (auto& line : parsed.lines) lines_[line.first] = std::move(line.second);
    lines_[key] = ours;
    const int unique = static_cast<int>(parsed.lines.size());
    if (parsed.obsolete || parsed.bad_lines > 0 ||
        parsed.duplicates > std::max(kMinDuplicatesToCompact, unique)) {
      return WriteWhole(path_, lines_, true, &problem) == Placed::kOk ? "" : problem;
    }
    // One write at the end of the file: entries appended by anyone
    // (holding the lock or not) stay. Appends do not interleave, so an
    // unterminated last line read above is either complete by now (the
    // newline added then makes an empty line, which is skipped) or was
    // left so (the newline keeps ours whole).
    const bool unterminated = !text.empty() && text.back() != '\n';
    const std::string appended = (text.empty() ? HeaderLine() : unterminated ? "\n" : "") +
                                 FormatLine(key, ours);
    if (!WriteFully(fd.get(), appended)) return "cannot be written (" + ErrnoText() + ")";
    return "";
  }
  return problem.empty() ? "keeps being replaced by another process" : problem;
}

}  // namespace cocopie
