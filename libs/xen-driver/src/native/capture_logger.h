// A xentoollog logger that keeps libxenctrl's last error message instead of printing it, so the
// message can travel inside the JavaScript error of the call that failed. Messages are kept per
// thread: every operation runs on one libuv worker thread from start to end.
#pragma once

#include <xentoollog.h>

/** The logger to hand to xc_interface_open and xenforeignmemory_open. Never destroyed. */
xentoollog_logger *capture_logger(void);

/** Forgets this thread's last message (call before an operation starts). */
void capture_logger_clear(void);

/** This thread's last error message, or "" when none was logged since the last clear. */
const char *capture_logger_last(void);
