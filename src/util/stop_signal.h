// SIGINT, SIGTERM and SIGHUP ask a long job (train, ablate) to stop at its next safe point (after
// the current step, with a checkpoint) instead of killing it.
//
// The handlers go in as the first thing `main` does for those commands: a process started in the
// background of a non-interactive shell inherits SIGINT as ignored, and a signal that arrives
// while it still is would be lost (the hostile test saw Ctrl-C in the first 0.2 s ignored).
#pragma once

namespace mf {

// Installs the handlers (idempotent). A request that already arrived stays pending.
void install_stop_handlers();
// Restores the dispositions install_stop_handlers() replaced, and clears any pending request.
void uninstall_stop_handlers();
bool stop_handlers_installed();
// The signal that asked to stop, or 0.
int stop_signal();

}  // namespace mf
