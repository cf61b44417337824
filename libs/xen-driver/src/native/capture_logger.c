// See capture_logger.h.

#include "capture_logger.h"

#include <stdio.h>
#include <string.h>

static __thread char last_message[512];

static void capture_vmessage(xentoollog_logger *logger, xentoollog_level level, int errnoval,
                             const char *context, const char *format, va_list al) {
  (void)logger;
  // Progress and debug chatter is of no use in an error message.
  if (level < XTL_WARN) return;
  size_t used = 0;
  if (context != NULL) used = (size_t)snprintf(last_message, sizeof last_message, "%s: ", context);
  if (used < sizeof last_message) used += (size_t)vsnprintf(last_message + used, sizeof last_message - used, format, al);
  if (errnoval >= 0 && used < sizeof last_message)
    snprintf(last_message + used, sizeof last_message - used, ": %s", strerror(errnoval));
}

static void capture_progress(xentoollog_logger *logger, const char *context, const char *doing_what, int percent,
                             unsigned long done, unsigned long total) {
  (void)logger, (void)context, (void)doing_what, (void)percent, (void)done, (void)total;
}

static void capture_destroy(xentoollog_logger *logger) { (void)logger; }

static xentoollog_logger the_logger = {
    .vmessage = capture_vmessage,
    .progress = capture_progress,
    .destroy = capture_destroy,
};

xentoollog_logger *capture_logger(void) { return &the_logger; }

void capture_logger_clear(void) { last_message[0] = '\0'; }

const char *capture_logger_last(void) { return last_message; }
