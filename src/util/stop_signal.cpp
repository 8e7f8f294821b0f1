#include "util/stop_signal.h"

#include <signal.h>

#include <csignal>
#include <cstdlib>

namespace mf {

namespace {

constexpr int kSignals[3] = {SIGINT, SIGTERM, SIGHUP};
volatile std::sig_atomic_t g_stop_signal = 0;
bool g_installed = false;
void (*g_previous[3])(int) = {nullptr, nullptr, nullptr};

extern "C" void request_stop(int signal) {
  g_stop_signal = signal;
}

}  // namespace

void install_stop_handlers() {
  if (g_installed) return;
  for (int i = 0; i < 3; ++i) g_previous[i] = std::signal(kSignals[i], request_stop);
  g_installed = true;
}

void release_launcher_signals() {
  const char* text = std::getenv("MF_LAUNCHER_BLOCKED");
  if (text == nullptr) return;
  const unsigned long blocked = std::strtoul(text, nullptr, 10);
  unsetenv("MF_LAUNCHER_BLOCKED");  // not for the processes this one starts
  sigset_t release;
  sigemptyset(&release);
  for (int s : kSignals)
    if (blocked & (1UL << s)) sigaddset(&release, s);
  sigprocmask(SIG_UNBLOCK, &release, nullptr);
}

void uninstall_stop_handlers() {
  if (!g_installed) return;
  for (int i = 0; i < 3; ++i) std::signal(kSignals[i], g_previous[i]);
  g_installed = false;
  g_stop_signal = 0;
}

bool stop_handlers_installed() {
  return g_installed;
}

int stop_signal() {
  return g_stop_signal;
}

}  // namespace mf
