/* wallboard.c - the wallboard page (agentd/API.md "Wallboard"): none yet. */
#include "api_int.h"

const api_route api_wallboard_routes[1] = {{0}};
const size_t api_wallboard_nroutes = 0;
