#include "ccurl.h"

CURLcode wfs_curl_global_init(void) { return curl_global_init(CURL_GLOBAL_DEFAULT); }
CURLcode wfs_easy_set_long(CURL *h, CURLoption opt, long value) { return curl_easy_setopt(h, opt, value); }
CURLcode wfs_easy_set_off(CURL *h, CURLoption opt, curl_off_t value) { return curl_easy_setopt(h, opt, value); }
CURLcode wfs_easy_set_string(CURL *h, CURLoption opt, const char *value) { return curl_easy_setopt(h, opt, value); }
CURLcode wfs_easy_set_pointer(CURL *h, CURLoption opt, void *value) { return curl_easy_setopt(h, opt, value); }
CURLcode wfs_easy_set_slist(CURL *h, CURLoption opt, struct curl_slist *value) { return curl_easy_setopt(h, opt, value); }
CURLcode wfs_easy_set_data_cb(CURL *h, CURLoption opt, wfs_curl_data_cb cb) { return curl_easy_setopt(h, opt, cb); }
CURLcode wfs_easy_get_long(CURL *h, CURLINFO info, long *out) { return curl_easy_getinfo(h, info, out); }
CURLcode wfs_easy_get_off(CURL *h, CURLINFO info, curl_off_t *out) { return curl_easy_getinfo(h, info, out); }
CURLcode wfs_easy_get_pointer(CURL *h, CURLINFO info, void **out) { return curl_easy_getinfo(h, info, out); }
CURLMcode wfs_multi_set_long(CURLM *m, CURLMoption opt, long value) { return curl_multi_setopt(m, opt, value); }
