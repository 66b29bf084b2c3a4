/* files.h: private to the library. Writing a file in one piece, shared by the chart writer
 * and the checkpoints. */
#ifndef TAPEGRAD_FILES_H
#define TAPEGRAD_FILES_H

#include <stdbool.h>
#include <stdio.h>

#include "tapegrad.h"

/* Fills path.tmpN (a new file next to path) with write_body(file, ctx), which returns false
 * with errno set when a write fails, and renames it over path only when all of it was
 * written. On failure removes the temporary file, leaves path as it was, and returns -1 with
 * "PATH: cannot ...: REASON" in err (err may be NULL). Returns 0 and leaves err alone on
 * success. */
int tg_write_file_atomically(const char *path, bool (*write_body)(FILE *file, void *ctx), void *ctx,
                             tg_error *err);

#endif
