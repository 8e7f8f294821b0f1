// marginface: the launcher in front of marginface-core (issue "Nothing lost, nothing silently
// wrong", item 8).
//
// Why it exists: a process started in the background of a script inherits SIGINT as ignored, and
// the kernel drops a signal whose disposition is "ignore" — unless the signal is blocked, in which
// case it stays pending (and blocked signals, pending ones included, survive execve). The real
// program links ~150 shared libraries (OpenCV's image codecs alone bring GDAL, Poppler, …), and
// the dynamic loader spends 0.2–0.4 s mapping them before main() can install its handlers: a
// SIGINT, SIGTERM or SIGHUP in that time was lost. This launcher is linked statically (no loader,
// no libraries), blocks the three signals as its first act, and executes marginface-core beside
// it; main() there installs its handlers and then unblocks them, so a stop request sent at any
// moment after this program starts is delivered.
//
// MF_LAUNCHER_BLOCKED tells marginface-core which signals this launcher blocked (a bit mask of
// signal numbers), so it unblocks exactly those and keeps any the caller had blocked itself.
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char kCoreName[] = "marginface-core";

int main(int argc, char** argv) {
  (void)argc;
  const int signals[3] = {SIGINT, SIGTERM, SIGHUP};
  sigset_t block, previous;
  sigemptyset(&block);
  for (int i = 0; i < 3; ++i) sigaddset(&block, signals[i]);
  sigprocmask(SIG_BLOCK, &block, &previous);
  unsigned long newly_blocked = 0;
  for (int i = 0; i < 3; ++i)
    if (!sigismember(&previous, signals[i])) newly_blocked |= 1UL << signals[i];
  char mask[32];
  snprintf(mask, sizeof mask, "%lu", newly_blocked);
  setenv("MF_LAUNCHER_BLOCKED", mask, 1);

  // marginface-core lives beside this executable (build/bin, or wherever both were installed).
  char path[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) {
    fprintf(stderr, "marginface: cannot find its own location (/proc/self/exe: %s)\n",
            strerror(errno));
    return 127;
  }
  path[n] = '\0';
  char* slash = strrchr(path, '/');
  if (slash == NULL || (size_t)(slash + 1 - path) + sizeof kCoreName > sizeof path) {
    fprintf(stderr, "marginface: unexpected executable path '%s'\n", path);
    return 127;
  }
  memcpy(slash + 1, kCoreName, sizeof kCoreName);
  execv(path, argv);  // argv[0] stays as the user typed it
  fprintf(stderr, "marginface: cannot start %s: %s\n", path, strerror(errno));
  return 127;
}
