/* files.h: private to the library. Writing a file in one piece, shared by the chart writer,
 * the checkpoints and tg_write_text_file. */
#ifndef TAPEGRAD_FILES_H
#define TAPEGRAD_FILES_H

#include <stdbool.h>
#include <stdio.h>

#include "tapegrad.h"

/* Fills a new temporary file PATH.tmp.PID.N next to the file path names (where its chain of
 * symbolic links ends, when it is one) with write_body(file, ctx), which returns false with
 * errno set when a write fails, and renames it over that file only when all of it was
 * written; a replaced file's permissions carry over. On failure removes the temporary file,
 * leaves the target as it was, and returns -1 with "TARGET: cannot ...: REASON" in err (err
 * may be NULL; when every temporary name tried exists, the message names the last one).
 * Returns 0 and leaves err alone on success. */
int tg_write_file_atomically(const char *path, bool (*write_body)(FILE *file, void *ctx), void *ctx,
                             tg_error *err);

#endif
