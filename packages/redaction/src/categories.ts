// Which prefilter cores a piece of text contains, as bits. Each built-in detector declares
// the cores its matches always contain, so a field whose text lacks them skips it.
export const CORE_DIGITS = 1; // 8+ digits with at most 3 separators between: phone, card
export const CORE_IPV4 = 2;
export const CORE_IPV6 = 4;
export const CORE_AT = 8; // email, URL with a password
export const CORE_KEY_VALUE = 16; // key/token/secret/password… followed by : or =
export const CORE_KEY_PREFIX = 32; // sk-, AKIA, ghp_, xox?-, …
export const CORE_JWT = 64;
export const CORE_PRIVATE_KEY = 128;
export const CORE_BEARER_BASIC = 256;
export const CORE_PASSWORD_IS = 512;
