/* read.c - the read routes (agentd/API.md "Read"): none yet. */
#include "api_int.h"

const api_route api_read_routes[1] = {{0}};
const size_t api_read_nroutes = 0;
