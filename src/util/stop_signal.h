// SIGINT, SIGTERM and SIGHUP ask a long job (train, ablate) to stop at its next safe point (after
// the current step, with a checkpoint) instead of killing it.
//
// The handlers go in as the first thing `main` does for those commands: a process started in the
// background of a non-interactive shell inherits SIGINT as ignored, and a signal that arrives
// while it still is would be lost (the hostile test saw Ctrl-C in the first 0.2 s ignored). The
// time before main — the dynamic loader mapping ~150 libraries — is covered by the launcher
// (src/apps/launcher.c), which holds the signals blocked until release_launcher_signals().
#pragma once

namespace mf {

// Installs the handlers (idempotent). A request that already arrived stays pending.
void install_stop_handlers();
// Unblocks the stop signals the `marginface` launcher blocked before executing marginface-core
// (src/apps/launcher.c; it says which in MF_LAUNCHER_BLOCKED, removed here), so a request that
// arrived during start-up is delivered now: to the handlers when they are installed, else with the
// default action. Call it right after install_stop_handlers(), or first thing where there are none.
void release_launcher_signals();
// Restores the dispositions install_stop_handlers() replaced, and clears any pending request.
void uninstall_stop_handlers();
bool stop_handlers_installed();
// The signal that asked to stop, or 0.
int stop_signal();

}  // namespace mf
