/* err.h - ariq's error codes.
 *
 * Every ariq function that can fail returns int: 0 on success, one of these
 * (negative) on failure. A module that has more to say keeps a message where
 * its caller can read it (e.g. ari_client_errmsg()). */
#ifndef ARIQ_CORE_ERR_H
#define ARIQ_CORE_ERR_H

enum {
    ARIQ_OK = 0,
    ARIQ_ENOMEM = -1,   /* allocation failed */
    ARIQ_EINVAL = -2,   /* a bad argument or outside input */
    ARIQ_EIO = -3,      /* a transport failed (socket, HTTP, Redis) */
    ARIQ_ENOTFOUND = -4,/* the named thing does not exist */
    ARIQ_EBUSY = -5,    /* not now: not connected, shutting down, in use */
    ARIQ_ETIMEDOUT = -6,/* gave up waiting */
    ARIQ_ERANGE = -7,   /* a value or a length out of its limits */
    ARIQ_ESTATE = -8,   /* not allowed in the current state */
    ARIQ_ECLOSED = -9,  /* the object is closing or closed */
};

/* Returns a static string naming the code ("ENOMEM"); never NULL. */
const char *ariq_strerror(int err);

#endif
