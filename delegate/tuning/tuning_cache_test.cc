// The tuning cache file at hostile paths: someone else's text file, a
// device, a FIFO, a directory, a symbolic link (at the path, or planted
// where a temporary file could go), a read-only file, one too large, and
// several processes writing at once.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "delegate/tuning/kernel_tuning.h"
#include "delegate/kernels/pattern_conv.h"
#include "gtest/gtest.h"

namespace cocopie {
namespace {

namespace fs = std::filesystem;

// A fresh directory for one test, removed with everything in it.
class ScratchDir {
 public:
  ScratchDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string pattern =
        std::string(base != nullptr && *base ? base : "/tmp") + "/cocopie_cache_test_XXXXXX";
    path_ = mkdtemp(&pattern[0]) != nullptr ? pattern : "";
  }
  ~ScratchDir() {
    std::error_code ignored;
    if (!path_.empty()) fs::remove_all(path_, ignored);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

KernelTuning Rows() {
  KernelTuning t;
  t.kernel = KernelKind::kRows;
  return t;
}

// A cache line another writer could add: "<key>\t<record hex>\n".
std::string EntryLine(const std::string& key) {
  TuningRecordEntry e;
  e.target = PatternConvSimdTarget();
  e.tuning = Rows();
  return key + "\t" + TuningRecordHex({e}) + "\n";
}

std::string Header() { return std::string(kTuningCacheHeader) + ": test\n"; }

bool Contains(const std::vector<std::string>& warnings, const std::string& part) {
  for (const std::string& w : warnings) {
    if (w.find(part) != std::string::npos) return true;
  }
  return false;
}

// Looks up and stores one entry; the file must be refused with `reason`
// and the entry kept in memory.
void ExpectRefused(const std::string& path, const std::string& reason) {
  TuningCache cache(path);
  std::vector<std::string> warnings;
  KernelTuning found;
  EXPECT_FALSE(cache.Lookup("k|cpu|t1", &found, &warnings));
  cache.Store("k|cpu|t1", Rows(), 1, &warnings);
  EXPECT_TRUE(Contains(warnings, reason)) << path << ": " << ::testing::PrintToString(warnings);
  EXPECT_TRUE(cache.Lookup("k|cpu|t1", &found, &warnings)) << "kept in memory";
}

TEST(TuningCacheFile, ForeignTextFileIsNeverOverwritten) {
  ScratchDir dir;
  const std::string path = dir / "notes.txt";
  const std::string notes = "my notes\nnot a cache\n";
  WriteFile(path, notes);
  ExpectRefused(path, "is not a cocopie tuning cache");
  EXPECT_EQ(ReadFile(path), notes);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

TEST(TuningCacheFile, DirectoryFifoAndDeviceAreRefusedUnopened) {
  ScratchDir dir;
  // A FIFO opened for reading would block until a writer comes: turn a
  // hang into a failure.
  alarm(60);
  ASSERT_EQ(mkfifo((dir / "fifo").c_str(), 0600), 0);
  ExpectRefused(dir / "fifo", "is a FIFO");
  EXPECT_TRUE(fs::is_fifo(dir / "fifo"));
  fs::create_directory(dir / "folder");
  ExpectRefused(dir / "folder", "is a directory");
  EXPECT_TRUE(fs::is_empty(dir / "folder"));
  alarm(0);
  // A device of our own (/dev/zero's numbers), never the system's.
  if (mknod((dir / "zero").c_str(), S_IFCHR | 0600, makedev(1, 5)) != 0) {
    GTEST_SKIP() << "cannot make a device node here (not root?)";
  }
  ExpectRefused(dir / "zero", "is a character device");
  EXPECT_TRUE(fs::is_character_file(dir / "zero"));
}

TEST(TuningCacheFile, SymbolicLinkIsNotFollowed) {
  ScratchDir dir;
  WriteFile(dir / "victim", "precious\n");
  fs::create_symlink(dir / "victim", dir / "cache");
  ExpectRefused(dir / "cache", "is a symbolic link");
  EXPECT_TRUE(fs::is_symlink(dir / "cache"));
  EXPECT_EQ(ReadFile(dir / "victim"), "precious\n");
}

TEST(TuningCacheFile, LinksPlantedAtTemporaryNamesAreNotFollowed) {
  ScratchDir dir;
  WriteFile(dir / "victim", "precious\n");
  const std::string pid = std::to_string(getpid());
  const std::vector<std::string> planted = {"cache.tmp" + pid, ".cache.tmp" + pid, "cache.tmp"};
  for (const std::string& name : planted) {
    fs::create_symlink(dir / "victim", dir / name);
  }
  TuningCache cache(dir / "cache");
  std::vector<std::string> warnings;
  cache.Store("k|cpu|t1", Rows(), 1, &warnings);
  cache.Store("k2|cpu|t1", Rows(), 1, &warnings);
  EXPECT_TRUE(warnings.empty()) << ::testing::PrintToString(warnings);
  EXPECT_EQ(ReadFile(dir / "victim"), "precious\n");
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(dir / "cache")));
  // Nothing left behind but the cache, the victim and the planted links.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 5);
  TuningCache reread(dir / "cache");
  KernelTuning found;
  EXPECT_TRUE(reread.Lookup("k|cpu|t1", &found, &warnings));
  EXPECT_TRUE(reread.Lookup("k2|cpu|t1", &found, &warnings));
}

// Run as a user other than root (root may write anywhere): a read-only
// cache is read, not written; a read-only folder gets no file. 0 when so.
int CheckReadOnlyAsUser(const ScratchDir& dir, const std::string& path) {
  if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) return 3;
  if (access(path.c_str(), R_OK) != 0) return 4;  // e.g. a private test folder
  TuningCache cache(path);
  std::vector<std::string> warnings;
  KernelTuning found;
  bool ok = cache.Lookup("old|cpu|t1", &found, &warnings);
  cache.Store("new|cpu|t1", Rows(), 1, &warnings);
  ok = ok && Contains(warnings, "cannot be opened for writing") &&
       cache.Lookup("new|cpu|t1", &found, &warnings);
  TuningCache in_folder(dir / "missing");
  warnings.clear();
  in_folder.Store("new|cpu|t1", Rows(), 1, &warnings);
  return ok && Contains(warnings, "no temporary file beside it") ? 0 : 1;
}

TEST(TuningCacheFile, ReadOnlyFileIsReadButNotWritten) {
  ScratchDir dir;
  const std::string path = dir / "cache";
  const std::string text = Header() + EntryLine("old|cpu|t1");
  WriteFile(path, text);
  ASSERT_EQ(chmod(path.c_str(), 0444), 0);
  ASSERT_EQ(chmod(dir.path().c_str(), 0555), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) std::_Exit(CheckReadOnlyAsUser(dir, path));
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  chmod(dir.path().c_str(), 0755);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 4) GTEST_SKIP() << "the scratch folder is not readable by others";
  // A sandbox (e.g. Bazel's) may forbid switching users; make test-cc runs it.
  if (WEXITSTATUS(status) == 3) GTEST_SKIP() << "cannot drop root privileges here";
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(ReadFile(path), text);
  EXPECT_FALSE(fs::exists(dir / "missing"));
}

TEST(TuningCacheFile, OversizedFileIsNotRead) {
  ScratchDir dir;
  const std::string path = dir / "cache";
  WriteFile(path, Header());
  ASSERT_EQ(truncate(path.c_str(), static_cast<off_t>(kMaxTuningCacheBytes) + 1), 0);
  ExpectRefused(path, "is larger than 16 MiB");
  EXPECT_EQ(fs::file_size(path), kMaxTuningCacheBytes + 1);
}

// A cache opened afresh on `path` finds `key`, with no warning.
void ExpectRereadFinds(const std::string& path, const std::string& key) {
  TuningCache reread(path);
  std::vector<std::string> warnings;
  KernelTuning found;
  EXPECT_TRUE(reread.Lookup(key, &found, &warnings));
  EXPECT_TRUE(warnings.empty()) << ::testing::PrintToString(warnings);
}

// Stores one entry in a cache file holding `text`; the file must then be
// the header and `lines` entries, with no warning.
void ExpectCompactedTo(const std::string& path, const std::string& text, int lines) {
  WriteFile(path, text);
  TuningCache cache(path);
  std::vector<std::string> warnings;
  KernelTuning found;
  cache.Lookup("same|cpu|t1", &found, &warnings);
  warnings.clear();
  cache.Store("new|cpu|t1", Rows(), 1, &warnings);
  EXPECT_TRUE(warnings.empty()) << ::testing::PrintToString(warnings);
  const std::string rewritten = ReadFile(path);
  EXPECT_EQ(rewritten.rfind(kTuningCacheHeader, 0), 0u);
  EXPECT_EQ(std::count(rewritten.begin(), rewritten.end(), '\n'), 1 + lines) << rewritten;
  ExpectRereadFinds(path, "new|cpu|t1");
}

TEST(TuningCacheFile, OwnCacheDropsUnreadableAndSupersededLines) {
  ScratchDir dir;
  const std::string path = dir / "cache";
  // Our own file: its unreadable lines are reported, then dropped.
  std::string text = Header() + "no tab here\n" + EntryLine("same|cpu|t1") + "key-bad\tzz\n";
  WriteFile(path, text);
  TuningCache cache(path);
  std::vector<std::string> warnings;
  KernelTuning found;
  EXPECT_TRUE(cache.Lookup("same|cpu|t1", &found, &warnings));
  EXPECT_TRUE(Contains(warnings, "ignored 2 unreadable line(s)"));
  ExpectCompactedTo(path, text, 2);
  // Lines superseded by later ones for the same key, once they outnumber
  // the rest, are dropped too.
  text = Header();
  for (int i = 0; i < 100; ++i) text += EntryLine("same|cpu|t1");
  ExpectCompactedTo(path, text, 2);
  // An empty file is no one's data: it becomes a cache.
  ExpectCompactedTo(dir / "empty", "", 1);
}

// A cache of an earlier release (v1 header, records of the hand-made format)
// is read as empty, said so, and rewritten as a current cache.
TEST(TuningCacheFile, OlderReleasesCacheIsRewritten) {
  ScratchDir dir;
  const std::string path = dir / "cache";
  const std::string old_record = "0101" + std::string(48, '0');
  WriteFile(path, std::string(kTuningCacheV1Header) + ": test\nsame|cpu|t1\t" + old_record +
                      "\n");
  TuningCache cache(path);
  std::vector<std::string> warnings;
  KernelTuning found;
  EXPECT_FALSE(cache.Lookup("same|cpu|t1", &found, &warnings));
  EXPECT_TRUE(Contains(warnings, "written by an older release")) <<
      ::testing::PrintToString(warnings);
  warnings.clear();
  cache.Store("new|cpu|t1", Rows(), 1, &warnings);
  EXPECT_TRUE(warnings.empty()) << ::testing::PrintToString(warnings);
  const std::string rewritten = ReadFile(path);
  EXPECT_EQ(rewritten.rfind(kTuningCacheHeader, 0), 0u) << rewritten;
  EXPECT_EQ(rewritten.find(old_record), std::string::npos) << rewritten;
  ExpectRereadFinds(path, "new|cpu|t1");
}

// Writers in three processes at once (each through its own TuningCache, as
// delegates in several processes would be) and a fourth appending lines
// through a descriptor it keeps open, without the lock: every entry stays.
TEST(TuningCacheFile, ConcurrentWritersKeepEachOthersEntries) {
  ScratchDir dir;
  const std::string path = dir / "cache";
  WriteFile(path, Header());
  constexpr int kWriters = 3, kStoresEach = 40, kAppended = 2000;
  std::vector<pid_t> children;
  for (int w = 0; w < kWriters; ++w) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      TuningCache cache(path);
      std::vector<std::string> warnings;
      for (int i = 0; i < kStoresEach; ++i) {
        cache.Store("w" + std::to_string(w) + "-" + std::to_string(i) + "|cpu|t1", Rows(), 1,
                    &warnings);
      }
      std::_Exit(warnings.empty() ? 0 : 1);
    }
    children.push_back(pid);
  }
  const pid_t appender = fork();
  ASSERT_GE(appender, 0);
  if (appender == 0) {
    const int fd = open(path.c_str(), O_WRONLY | O_APPEND);
    for (int i = 0; i < kAppended && fd >= 0; ++i) {
      const std::string line = EntryLine("a-" + std::to_string(i) + "|cpu|t1");
      if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
        std::_Exit(2);
      }
    }
    std::_Exit(fd >= 0 ? 0 : 1);
  }
  children.push_back(appender);
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child " << pid;
  }
  TuningCache reread(path);
  std::vector<std::string> warnings;
  KernelTuning found;
  int missing = 0;
  for (int w = 0; w < kWriters; ++w) {
    for (int i = 0; i < kStoresEach; ++i) {
      missing += !reread.Lookup("w" + std::to_string(w) + "-" + std::to_string(i) + "|cpu|t1",
                                &found, &warnings);
    }
  }
  for (int i = 0; i < kAppended; ++i) {
    missing += !reread.Lookup("a-" + std::to_string(i) + "|cpu|t1", &found, &warnings);
  }
  EXPECT_EQ(missing, 0);
  EXPECT_TRUE(warnings.empty()) << ::testing::PrintToString(warnings);
}

}  // namespace
}  // namespace cocopie
