/*
 * serve_trunks.h - loading the stored trunks for the SIP engine (serve_trunks.c).
 */
#ifndef CP_SERVE_TRUNKS_H
#define CP_SERVE_TRUNKS_H

#include <stddef.h>
#include <stdint.h>

#include "sip/sip.h"
#include "store/store.h"

/* Every stored trunk as the engine uses it: *out a heap array of *n (free() it; NULL when
 * none), *generation the store's trunk generation read before them (a change after it moves
 * it again). Passwords are read and hosts resolved now. -1 (logged) if the store cannot be
 * read; nothing is handed back then. */
int serve_trunks_load(struct store *st, struct sip_trunk **out, size_t *n, int64_t *generation);

#endif
