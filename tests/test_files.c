/* test_files.c: saving in one piece (src/files.c), through the cells' checkpoints and
 * tg_write_text_file: a save into a missing directory writes nothing, a failed write keeps the
 * previous checkpoint, a failed rename leaves no temporary file, saving again replaces the
 * whole file, a symbolic link is written through, a replaced file keeps its permissions,
 * stale temporary files do not block a save, and a long path never crowds out the reason. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint_files.h"
#include "scratch_dir.h"
#include "tapegrad.h"

START_TEST(test_save_into_a_missing_directory_fails_and_writes_nothing)
{
    char path[PATH_SIZE], want[PATH_SIZE + 64];
    scratch_path(path, "missing/rnn.safetensors");
    tg_rnn_cell *cell = tg_rnn_cell_new(2, 3, 1);
    tg_error err;
    ck_assert_int_eq(tg_rnn_cell_save(cell, path, &err), -1);
    snprintf(want, sizeof want, "%s: cannot open for writing: No such file or directory", path);
    ck_assert_str_eq(err.message, want);
    ck_assert_int_eq(tg_rnn_cell_save(cell, path, NULL), -1);
    scratch_dir_assert_holds(0);
    tg_rnn_cell_free(cell);
}
END_TEST

/* A file size limit (RLIMIT_FSIZE) makes the writes of a large save fail part way (EFBIG):
 * the smaller checkpoint saved before is still there, whole, and no temporary file is left. */
START_TEST(test_failed_write_keeps_the_previous_checkpoint)
{
    char path[PATH_SIZE], want[PATH_SIZE + 64];
    scratch_path(path, "model.safetensors");
    tg_rnn_cell *small = tg_rnn_cell_new(2, 3, 1), *big = tg_rnn_cell_new(60, 60, 2);
    tg_error err;
    ck_assert_int_eq(tg_rnn_cell_save(small, path, &err), 0);
    size_t before_size;
    unsigned char *before = read_bytes(path, &before_size);

    struct rlimit old, limited;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    limited = (struct rlimit){ 10000, old.rlim_max };
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &limited), 0);
    int rc = tg_rnn_cell_save(big, path, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);

    ck_assert_int_eq(rc, -1);
    snprintf(want, sizeof want, "%s: cannot write: File too large", path);
    ck_assert_str_eq(err.message, want);
    scratch_dir_assert_holds(1);
    size_t after_size;
    unsigned char *after = read_bytes(path, &after_size);
    ck_assert_uint_eq(after_size, before_size);
    ck_assert_int_eq(memcmp(before, after, before_size), 0);
    tg_rnn_cell *loaded = tg_rnn_cell_new(2, 3, 3);
    ck_assert_int_eq(tg_rnn_cell_load(loaded, path, &err), 0);
    assert_same_tensor(small->W_h, loaded->W_h, "W_h");
    free(before);
    free(after);
    tg_rnn_cell_free(loaded);
    tg_rnn_cell_free(small);
    tg_rnn_cell_free(big);
}
END_TEST

START_TEST(test_failed_rename_leaves_no_temporary_file)
{
    char path[PATH_SIZE];
    ck_assert_int_eq(mkdir(scratch_path(path, "taken"), 0700), 0);
    tg_gru_cell *cell = tg_gru_cell_new(2, 3, 1, NULL);
    tg_error err;
    ck_assert_int_eq(tg_gru_cell_save(cell, path, &err), -1);
    scratch_dir_assert_refused_rename(path, err.message);
    tg_gru_cell_free(cell);
}
END_TEST

START_TEST(test_saving_again_replaces_the_whole_file_and_clears_the_error)
{
    char path[PATH_SIZE];
    scratch_path(path, "cell.safetensors");
    tg_lstm_cell *big = tg_lstm_cell_new(5, 8, 1, NULL);
    tg_rnn_cell *small = tg_rnn_cell_new(2, 3, 2), *loaded = tg_rnn_cell_new(2, 3, 3);
    tg_error err = { "left over" };
    ck_assert_int_eq(tg_lstm_cell_save(big, path, &err), 0);
    ck_assert_str_eq(err.message, "");
    strcpy(err.message, "left over");
    ck_assert_int_eq(tg_rnn_cell_save(small, path, &err), 0);
    ck_assert_str_eq(err.message, "");
    size_t size;
    free(read_bytes(path, &size));
    ck_assert_uint_lt(size, 400);
    ck_assert_int_eq(tg_rnn_cell_load(loaded, path, &err), 0);
    assert_same_tensor(small->W_x, loaded->W_x, "W_x");
    scratch_dir_assert_holds(1);
    tg_lstm_cell_free(big);
    tg_rnn_cell_free(small);
    tg_rnn_cell_free(loaded);
}
END_TEST

/* Saving to a chain of two relative links (read from the links' own directory, not the
 * working one) replaces the file at its end; the links stay as they were. A link to a file
 * that does not exist yet creates it. */
START_TEST(test_saving_through_a_symbolic_link_replaces_its_target_and_keeps_the_link)
{
    char target[PATH_SIZE], middle[PATH_SIZE], link[PATH_SIZE];
    char fresh[PATH_SIZE], dangling[PATH_SIZE];
    scratch_path(target, "target.safetensors");
    ck_assert_int_eq(symlink("target.safetensors", scratch_path(middle, "middle.safetensors")), 0);
    ck_assert_int_eq(symlink("middle.safetensors", scratch_path(link, "link.safetensors")), 0);
    ck_assert_int_eq(symlink("fresh.safetensors", scratch_path(dangling, "dangling.safetensors")), 0);
    scratch_path(fresh, "fresh.safetensors");
    tg_rnn_cell *old = tg_rnn_cell_new(2, 3, 1), *saved = tg_rnn_cell_new(2, 3, 2);
    tg_rnn_cell *loaded = tg_rnn_cell_new(2, 3, 3);
    tg_error err;
    ck_assert_int_eq(tg_rnn_cell_save(old, target, &err), 0);
    ck_assert_int_eq(tg_rnn_cell_save(saved, link, &err), 0);
    ck_assert_int_eq(tg_rnn_cell_save(saved, dangling, &err), 0);

    const char *links[3][2] = { { link, "middle.safetensors" }, { middle, "target.safetensors" },
                                { dangling, "fresh.safetensors" } };
    for (int i = 0; i < 3; i++) {
        char read[PATH_SIZE];
        ssize_t n = readlink(links[i][0], read, sizeof read - 1);
        ck_assert_msg(n >= 0, "%s is no longer a symbolic link", links[i][0]);
        read[n] = '\0';
        ck_assert_str_eq(read, links[i][1]);
    }
    ck_assert_int_eq(tg_rnn_cell_load(loaded, target, &err), 0);
    assert_same_tensor(saved->W_h, loaded->W_h, "W_h");
    ck_assert_int_eq(tg_rnn_cell_load(loaded, fresh, &err), 0);
    assert_same_tensor(saved->W_x, loaded->W_x, "W_x");
    scratch_dir_assert_holds(5);
    tg_rnn_cell_free(old);
    tg_rnn_cell_free(saved);
    tg_rnn_cell_free(loaded);
}
END_TEST

static unsigned permissions(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return (unsigned)st.st_mode & 0777u;
}

/* A replaced file keeps its permissions, whatever the umask; a new one gets 0666 less the
 * umask, as fopen gives. */
START_TEST(test_saving_over_a_file_keeps_its_permissions)
{
    char path[PATH_SIZE], fresh[PATH_SIZE];
    scratch_path(path, "private.safetensors");
    tg_gru_cell *cell = tg_gru_cell_new(2, 3, 1, NULL);
    mode_t old_umask = umask(022);
    ck_assert_int_eq(tg_gru_cell_save(cell, path, NULL), 0);
    ck_assert_uint_eq(permissions(path), 0644);
    ck_assert_int_eq(chmod(path, 0600), 0);
    ck_assert_int_eq(tg_gru_cell_save(cell, path, NULL), 0);
    ck_assert_uint_eq(permissions(path), 0600);
    ck_assert_int_eq(chmod(path, 0664), 0);
    ck_assert_int_eq(tg_gru_cell_save(cell, path, NULL), 0);
    ck_assert_uint_eq(permissions(path), 0664);
    umask(077);
    ck_assert_int_eq(tg_gru_cell_save(cell, scratch_path(fresh, "fresh.safetensors"), NULL), 0);
    ck_assert_uint_eq(permissions(fresh), 0600);
    umask(old_umask);
    scratch_dir_assert_holds(2);
    tg_gru_cell_free(cell);
}
END_TEST

/* A hundred temporary files left by killed saves (PATH.tmp0 to PATH.tmp99, the names saves
 * once took in turn) do not stop the next save, which leaves nothing of its own behind. */
START_TEST(test_stale_temporary_files_do_not_block_a_save)
{
    char path[PATH_SIZE], stale[PATH_SIZE + 16];
    scratch_path(path, "model.safetensors");
    for (int i = 0; i < 100; i++) {
        snprintf(stale, sizeof stale, "%s.tmp%d", path, i);
        write_bytes(stale, "half", 4);
    }
    tg_lstm_cell *cell = tg_lstm_cell_new(2, 3, 1, NULL);
    tg_error err;
    ck_assert_msg(tg_lstm_cell_save(cell, path, &err) == 0, "%s", err.message);
    ck_assert_int_eq(tg_lstm_cell_load(cell, path, &err), 0);
    scratch_dir_assert_holds(101);
    tg_lstm_cell_free(cell);
}
END_TEST

/* Paths of 200, 245, 300 and 4000 bytes into a missing directory: the message keeps the
 * whole reason and, when it must, shortens the path in the middle. */
START_TEST(test_a_long_path_keeps_the_reason_of_a_failed_save)
{
    static const size_t lengths[] = { 200, 245, 300, 4000 };
    char path[4001];
    tg_tensor *w = tg_param_new(2, 2);
    tg_named named[1] = { { "w", w } };
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        tg_error err;
        ck_assert_int_eq(tg_save(long_missing_path(path, lengths[i]), named, 1, &err), -1);
        assert_message_keeps_reason(err.message, path,
                                    "cannot open for writing: No such file or directory");
    }
    scratch_dir_assert_holds(0);
    tg_param_free(w);
}
END_TEST

/* tg_write_text_file replaces the file as a whole (a hard link to the old one keeps the old
 * text), writes through a symbolic link, and refuses NULL arguments. */
START_TEST(test_write_text_file_replaces_the_file_in_one_piece)
{
    char path[PATH_SIZE], kept[PATH_SIZE], via[PATH_SIZE];
    scratch_path(path, "table.csv");
    write_bytes(path, "old\n", 4);
    ck_assert_int_eq(link(path, scratch_path(kept, "kept.csv")), 0);
    ck_assert_int_eq(symlink("table.csv", scratch_path(via, "link.csv")), 0);
    tg_error err = { "left over" };
    const char table[] = "a,b\n1,2\n";
    ck_assert_int_eq(tg_write_text_file(via, table, strlen(table), &err), 0);
    ck_assert_str_eq(err.message, "");
    size_t n;
    char *got = (char *)read_bytes(path, &n);
    ck_assert_uint_eq(n, strlen(table));
    ck_assert_int_eq(memcmp(got, table, n), 0);
    free(got);
    got = (char *)read_bytes(kept, &n);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(memcmp(got, "old\n", 4), 0);
    free(got);
    ck_assert_int_eq(tg_write_text_file(path, "", 0, &err), 0);
    free(read_bytes(path, &n));
    ck_assert_uint_eq(n, 0);
    scratch_dir_assert_holds(3);

    ck_assert_int_eq(tg_write_text_file(NULL, table, 1, &err), -1);
    ck_assert_str_eq(err.message, "tg_write_text_file: path is NULL");
    ck_assert_int_eq(tg_write_text_file(path, NULL, 3, &err), -1);
    char want[PATH_SIZE + 32];
    snprintf(want, sizeof want, "%s: text is NULL with n 3", path);
    ck_assert_str_eq(err.message, want);
}
END_TEST

Suite *files_suite(void)
{
    Suite *s = suite_create("files");
    TCase *save = tcase_create("saving");
    tcase_add_checked_fixture(save, scratch_dir_make, scratch_dir_remove);
    tcase_add_test(save, test_save_into_a_missing_directory_fails_and_writes_nothing);
    tcase_add_test(save, test_failed_write_keeps_the_previous_checkpoint);
    tcase_add_test(save, test_failed_rename_leaves_no_temporary_file);
    tcase_add_test(save, test_saving_again_replaces_the_whole_file_and_clears_the_error);
    tcase_add_test(save, test_saving_through_a_symbolic_link_replaces_its_target_and_keeps_the_link);
    tcase_add_test(save, test_saving_over_a_file_keeps_its_permissions);
    tcase_add_test(save, test_stale_temporary_files_do_not_block_a_save);
    tcase_add_test(save, test_a_long_path_keeps_the_reason_of_a_failed_save);
    tcase_add_test(save, test_write_text_file_replaces_the_file_in_one_piece);
    suite_add_tcase(s, save);
    return s;
}
