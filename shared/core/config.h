/* config.h - INI configuration, Asterisk style, validated by table.
 *
 * A file is read with libinih into sections and keys, each remembering its
 * line. A daemon then applies a table of fields (key, type, limits, default)
 * to a section, filling a plain struct: every error names the file, the line,
 * the section, the key and the bad value, and stops at the first one, so a
 * config either loads whole or changes nothing.
 *
 *   [general]
 *   node_id = node1
 *   ari_password = ${ARI_PASSWORD}      ; taken from the environment
 *
 *   [queue support]
 *   announce_frequency = 30
 *
 * A value written `${NAME}` is replaced by the environment variable NAME (an
 * error if it is not set), so secrets need not sit in the file. Values of
 * CFG_SECRET fields never appear in an error message or a log line.
 *
 * Section headers are "[name]" or "[kind name]" (one space). Duplicate
 * sections and duplicate keys in one section are errors; so are keys a table
 * does not know (cfg_apply), so a typo never silently means a default. */
#ifndef ARIQ_CORE_CONFIG_H
#define ARIQ_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cfg cfg;

typedef enum {
    CFG_STR,    /* char[max] at offset; max = buffer size incl. NUL          */
    CFG_ID,     /* like CFG_STR, only [A-Za-z0-9._-] (becomes keys, paths)   */
    CFG_SECRET, /* like CFG_STR, never echoed                                */
    CFG_INT,    /* long at offset, min..max                                  */
    CFG_BOOL,   /* bool at offset: yes/no/true/false/on/off/1/0              */
    CFG_DOUBLE, /* double at offset, min..max                                */
    CFG_DTMF,   /* char at offset: one of 0-9 * # A-D, or "" / none for off  */
} cfg_type;

typedef struct cfg_field {
    const char *key;
    cfg_type type;
    size_t offset;    /* offsetof(your_struct, member) */
    long min, max;    /* INT/DOUBLE range; STR/ID/SECRET: max = buffer size */
    const char *def;  /* default as text (parsed like a file value), or NULL */
    bool required;    /* missing and no default -> error */
} cfg_field;

/* Loads `path`. On success *out is yours (cfg_free). On failure returns
 * ARIQ_EINVAL (or ARIQ_ENOTFOUND for a missing file), writes
 * "path:line: message" into err, and *out is untouched. */
int cfg_load_file(const char *path, cfg **out, char *err, size_t errlen);

/* The same from text in memory; `name` stands for the file name in errors. */
int cfg_load_string(const char *text, const char *name, cfg **out, char *err, size_t errlen);

void cfg_free(cfg *c);

/* Sections in file order. Names are borrowed from c. `kind` is the first word
 * of the header ("queue"), `name` the rest ("support") or "" when none. */
size_t cfg_section_count(const cfg *c);
const char *cfg_section_kind(const cfg *c, size_t i);
const char *cfg_section_name(const cfg *c, size_t i);
int cfg_section_line(const cfg *c, size_t i);

/* Index of section [kind name] (name "" for [kind]) or -1. */
int cfg_section_find(const cfg *c, const char *kind, const char *name);

/* Applies `fields` (terminated by an entry with key NULL) to section i,
 * writing into dst. Keys the table does not know are errors; fields the
 * section lacks take their default. Returns 0 or ARIQ_EINVAL with
 * "file:line: [section] key: message" in err. On error dst may be partly
 * written: apply into a scratch struct and copy on success. i may be -1 (the
 * section is absent): then only defaults apply. */
int cfg_apply(const cfg *c, int i, const cfg_field *fields, void *dst, char *err,
              size_t errlen);

/* A raw value (after ${ENV} substitution), borrowed, or NULL. */
const char *cfg_get(const cfg *c, int section, const char *key);

#endif
