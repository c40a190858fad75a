#include "core/err.h"

const char *ariq_strerror(int err)
{
    switch (err) {
    case ARIQ_OK: return "OK";
    case ARIQ_ENOMEM: return "ENOMEM";
    case ARIQ_EINVAL: return "EINVAL";
    case ARIQ_EIO: return "EIO";
    case ARIQ_ENOTFOUND: return "ENOTFOUND";
    case ARIQ_EBUSY: return "EBUSY";
    case ARIQ_ETIMEDOUT: return "ETIMEDOUT";
    case ARIQ_ERANGE: return "ERANGE";
    case ARIQ_ESTATE: return "ESTATE";
    case ARIQ_ECLOSED: return "ECLOSED";
    }
    return "EUNKNOWN";
}
