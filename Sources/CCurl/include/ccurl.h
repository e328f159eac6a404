// Typed wrappers for libcurl's variadic setters and getters, which Swift cannot call.
#ifndef WEIGHTFS_CCURL_H
#define WEIGHTFS_CCURL_H
#include <curl/curl.h>
#include <stddef.h>

typedef size_t (*wfs_curl_data_cb)(char *ptr, size_t size, size_t nmemb, void *userdata);

CURLcode wfs_curl_global_init(void);
CURLcode wfs_easy_set_long(CURL *h, CURLoption opt, long value);
CURLcode wfs_easy_set_off(CURL *h, CURLoption opt, curl_off_t value);
CURLcode wfs_easy_set_string(CURL *h, CURLoption opt, const char *value);
CURLcode wfs_easy_set_pointer(CURL *h, CURLoption opt, void *value);
CURLcode wfs_easy_set_slist(CURL *h, CURLoption opt, struct curl_slist *value);
CURLcode wfs_easy_set_data_cb(CURL *h, CURLoption opt, wfs_curl_data_cb cb);
CURLcode wfs_easy_get_long(CURL *h, CURLINFO info, long *out);
CURLcode wfs_easy_get_off(CURL *h, CURLINFO info, curl_off_t *out);
CURLcode wfs_easy_get_pointer(CURL *h, CURLINFO info, void **out);
CURLMcode wfs_multi_set_long(CURLM *m, CURLMoption opt, long value);
#endif
