// Tables of values each built-in detector must find (exactly that value, in context)
// and look-alikes it must leave alone.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { builtInDetector, luhnValid, type DetectorName } from "./detectors.js";

const CONTEXTS = [
  (value: string) => value,
  (value: string) => `Hello, please use ${value} for this.`,
  (value: string) => `(${value})`,
  (value: string) => `{"field": "${value}", "n": 1}`,
];

function found(name: DetectorName, text: string): string[] {
  return builtInDetector(name)
    .find(text)
    .map((match) => text.slice(match.start, match.end));
}

/** A positive is a value (placed in varied contexts) or [text, the value expected in it]. */
type Positive = string | readonly [string, string];

function table(name: DetectorName, positives: readonly Positive[], negatives: readonly string[]): void {
  describe(`${name} detector`, () => {
    test(`has at least 30 positive and 30 negative cases`, () => {
      assert.ok(positives.length >= 30, `${positives.length} positives`);
      assert.ok(negatives.length >= 30, `${negatives.length} negatives`);
    });
    positives.forEach((positive, index) => {
      const [text, value] =
        typeof positive === "string" ? [CONTEXTS[index % CONTEXTS.length]!(positive), positive] : positive;
      test(`finds positive #${index}: ${JSON.stringify(text.slice(0, 48))}`, () => {
        assert.deepEqual(found(name, text), [value]);
      });
    });
    negatives.forEach((text, index) => {
      test(`ignores negative #${index}: ${JSON.stringify(text.slice(0, 48))}`, () => {
        assert.deepEqual(found(name, text), []);
      });
    });
  });
}

table(
  "email",
  [
    "john@example.com",
    "jane.doe@example.co.uk",
    "j.smith+newsletter@gmail.com",
    "user_name@sub.domain.org",
    "a@b.io",
    "first-last@company-name.com",
    "UPPER.CASE@EXAMPLE.COM",
    "x.y.z@mail.example.museum",
    "info@example.travel",
    "123456@numbers.net",
    "support@my-shop.de",
    "billing@acme.fr",
    "m@x.dev",
    "noreply@github.com",
    "team.lead@startup.ai",
    "marie-claire@example.be",
    "o.k@example.nl",
    "sales2024@example.com",
    "a_b_c@d-e-f.org",
    "dev+test+1@example.io",
    "ceo@bigcorp.com.au",
    "hr@example.co.jp",
    "root@server01.example.net",
    "person@example.technology",
    "mail@127host.com",
    "x1@y2.example.com",
    "quoted_user@example.ch",
    "contact@example.info",
    "jo@ex.am.ple.org",
    "n.surname@uni.ac.uk",
    "alerts@status.page.io",
    "percent%user@example.com",
  ],
  [
    "@mention in slack",
    "icon@2x.png",
    "logo@3x.jpg",
    "email me at john at example dot com",
    "user@localhost",
    "foo@bar",
    "a@b.c",
    "name@.com",
    "@example.com",
    "test@@example",
    "price @ 5.00 each",
    "npm i @scope/package",
    "decorator @Component()",
    "tag v1.2@latest",
    "user@domain..com",
    "x@y.123",
    "python@3.11",
    "2 @ 3pm",
    "ping @channel",
    "css @media screen",
    "a@b",
    "@@",
    "foo@bar.",
    "me@here.c",
    "contact us via the form",
    "ratio 3@4",
    "image@2x.webp",
    "script@1.0.0",
    "name(at)example.com",
    "user[at]example.com",
    "weird@-example.com",
    "@handle.twitter",
  ],
);

table(
  "phone",
  [
    "+1 555 123 4567",
    "+1-555-123-4567",
    "+1 (555) 123-4567",
    "(555) 123-4567",
    "555-123-4567",
    "555.123.4567",
    "555 123 4567",
    "1-800-555-0199",
    "+44 20 7946 0958",
    "+44 7911 123456",
    "020 7946 0958",
    "07911 123456",
    "+49 30 12345678",
    "+49 151 12345678",
    "030 12345678",
    "0171 1234567",
    "030/1234567",
    "+33 6 12 34 56 78",
    "06 12 34 56 78",
    "0612345678",
    "+33612345678",
    "+34 612 345 678",
    "+39 06 1234 5678",
    "+81 3-1234-5678",
    "+61 2 9876 5432",
    "+91 98765 43210",
    "0044 20 7946 0958",
    "+4915112345678",
    "07911123456",
    "+31 20 123 4567",
    "(030) 1234567",
    "+1.555.123.4567",
  ],
  [
    "2024-01-15",
    "2024-01-15 10:30:00",
    "at 10:30:45 today",
    "order 12345678",
    "order #88213",
    "ts 1700000000",
    "ts 1700000000123",
    "ISBN 978-3-16-148410-0",
    "version 1.2.3",
    "server 192.168.1.1",
    "pi is 3.14159265",
    "0.123456789",
    "$1,234,567.89",
    "1,000,000 users",
    "01.02.2024",
    "01/02/2024 10:30",
    "05-11-2023",
    "12345",
    "ZIP 90210",
    "just +1",
    "room 101",
    "page 12 of 345",
    "0x1234ABCD",
    "12:30 - 14:45",
    "SKU-000123-45",
    "tracking 1Z999AA10123456784",
    "id 550e8400-e29b-41d4-a716-446655440000",
    "2+2=4",
    "coordinates 52.5200, 13.4050",
    "build 20231015.1",
    "PO-2023-0042",
    "20240115103000",
    "temperature -12.5",
  ],
);

const CARDS = [
  "4111111111111111",
  "4012888888881881",
  "4222222222222",
  "4000056655665556",
  "4242424242424242",
  "5555555555554444",
  "5105105105105100",
  "5200828282828210",
  "2223003122003222",
  "5454545454545454",
  "378282246310005",
  "371449635398431",
  "378734493671000",
  "6011111111111117",
  "6011000990139424",
  "6011981111111113",
  "30569309025904",
  "38520000023237",
  "36227206271667",
  "3530111333300000",
  "3566002020360505",
  "6200000000000005",
  "4000002500003155",
  "4000000000003220",
  "5425233430109903",
  "2222420000001113",
  "4111 1111 1111 1111",
  "4111-1111-1111-1111",
  "3782 822463 10005",
  "5555 5555 5555 4444",
  "6011-1111-1111-1117",
  "4917 6100 0000 0000 003",
];

/** The same number with its last digit changed: Luhn fails. */
const breakLuhn = (card: string): string => card.slice(0, -1) + String((Number(card.at(-1)) + 1) % 10);

table("payment_card", CARDS, [
  ...CARDS.slice(0, 20).map(breakLuhn),
  "ts 1700000000000",
  "order 1234567890123",
  "0000000000000000",
  "9999999999999995",
  "411111111111",
  "41111111111111111111",
  "1234-5678-9012-3456",
  "4111.1111.1111.1111",
  "IBAN DE89370400440532013000",
  "tracking 9400111899223344556677",
  "pi 3.14159265358979323",
  "2023-10-15 12:34:56.789",
]);

describe("payment_card table sanity", () => {
  test("every positive passes Luhn and every broken one fails it", () => {
    for (const card of CARDS) {
      const digits = card.replace(/\D/g, "");
      assert.ok(luhnValid(digits), card);
      assert.ok(!luhnValid(breakLuhn(digits)), breakLuhn(card));
    }
  });
  test("a card next to other numbers is still found", () => {
    assert.deepEqual(found("payment_card", "ref 1234 4111 1111 1111 1111 cvv 123"), ["4111 1111 1111 1111"]);
    assert.deepEqual(found("payment_card", "4111111111111111, 5555555555554444"), [
      "4111111111111111",
      "5555555555554444",
    ]);
  });
});

table(
  "ip_address",
  [
    "192.168.1.1",
    "10.0.0.1",
    "172.16.254.3",
    "8.8.8.8",
    "1.1.1.1",
    "255.255.255.255",
    "203.0.113.42",
    "198.51.100.7",
    "100.64.0.1",
    "127.0.0.1",
    "169.254.10.20",
    "45.33.32.156",
    "2001:db8::1",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "fe80::1ff:fe23:4567:890a",
    "::ffff:192.0.2.128",
    "2001:db8:0:0:1:0:0:1",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "fe80::1",
    "2001:db8::",
    "::ffff:10.0.0.1",
    "2001:db8:a::123",
    "64:ff9b::192.0.2.33",
    "2a00:1450:4001:81b::200e",
    "fc00::7",
    "ff02::1:ff00:1",
    "1080::8:800:200c:417a",
    "2001:db8:1234:ffff:ffff:ffff:ffff:fff0",
    "2001:DB8::ABCD:12",
    "0.0.0.0",
  ],
  [
    "1.2.3",
    "1.2.3.4.5",
    "v1.2.3.4",
    "version 1.2.3.4",
    "release 2.0.0.1",
    "ver 1.0.0.0",
    "build 10.0.0.1",
    "256.1.1.1",
    "1.2.3.256",
    "01.02.03.04",
    "10.0.19041.1",
    "1.3.6.1.4.1.311",
    "3.14",
    "12:30:45",
    "2024-01-15T10:30:00Z",
    "00:1A:2B:3C:4D:5E",
    "::1",
    "::",
    "std::vector<int>",
    "dead::beef",
    "a:b",
    "ratio 1:2:3",
    "1.2.3.4a",
    "1.2.3.4-beta",
    "12.34",
    "100.200.300.400",
    "999.999.999.999",
    "1..2.3.4",
    "http://example.com:8080",
    "time 23:59:59.999",
    "1:2:3:4:5:6:7",
    "2001:db8:::1",
    "::ffff",
  ],
);

const STRIPE_LIKE = ["sk", "live", "4eC39HqLyjWDarjtT1zdp7dc"].join("_");
table(
  "api_key",
  [
    "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
    "sk-ant-api03-AbCdEf1234567890GhIjKlMnOpQrStUv",
    "sk-1234567890abcdefABCDEF1234567890abcdefABCDEF12",
    "AKIAIOSFODNN7EXAMPLE",
    "ASIAY34FZKBOKMUTVV7A",
    "ghp_1234567890abcdefghijABCDEFGHIJ123456",
    "gho_1234567890abcdefghijABCDEFGHIJ123456",
    "ghs_1234567890abcdefghijABCDEFGHIJ123456",
    "ghu_1234567890abcdefghijABCDEFGHIJ123456",
    "ghr_1234567890abcdefghijABCDEFGHIJ123456",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "xoxp-1234-5678-abcdefgh",
    STRIPE_LIKE,
    "rk_test_abcdefghij1234567890",
    "AIzaSyA1234567890abcdefghijklmnopqrstuv",
    "glpat-abcdefghij1234567890",
    "npm_abcdefghijklmnopqrstuvwxyz0123456789",
    "hf_abcdefghijklmnopqrstuvwxyz12345678",
    "SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "st_Qm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWp",
    "sk-proj-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp-Oo_Nn",
    "AKIAZ7QWERTY12345678",
    "xoxs-9876543210-abcdefABCDEF",
    "rk_live_ZYXWVUTSRQ0987654321",
    "glpat-Ab1Cd2Ef3Gh4Ij5Kl6Mn7",
    "hf_ZYXWVUTSRQPONMLKJIHGFEDCBA987654321",
    "npm_ZYXWVUTSRQPONMLKJIHGFEDCBA0987654321",
    "AIzaSyZ0987654321zyxwvutsrqponmlkjihgfe",
    "ABIA1234567890ABCDEF",
    "ACCAZZZZYYYYXXXX2345",
    "xoxa-2-1234567890",
  ],
  [
    "sk-learn-compatible-estimators",
    "risk-assessment-report-2024",
    "task-1234",
    "sk-short",
    "AKIA123",
    "AKIAIOSFODNN7EXAMPL",
    "ghp_short",
    "ghp_",
    "xoxo hugs",
    "xoxb-",
    "api_key=YOUR_API_KEY_HERE",
    "api_key=<your key>",
    "token: abc",
    "token=1234",
    "secret=changeme",
    "api_key=xxxxxxxxxxxxxxxxxxxx",
    "password reset token expired",
    "the key point is this",
    "apikey = ${API_KEY}",
    "token: aaaaaaaaaaaaaaaaaaaa",
    "secret: correct-horse-battery-staple",
    "npm_config_cache",
    "hf_hub_download",
    "st_mtime",
    "first_name",
    "AIzaSy",
    "glpat-",
    "SG.foo.bar",
    "github_pat_short",
    "sk_live_123",
    "sk-ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "monkey: banana",
    "token_count=1234567890123456",
    "keyboard=qwertyuiop1234567",
    "token: 1234567890123456789012",
  ],
);

describe("api_key generic key=value", () => {
  const cases: Array<[string, string]> = [
    ["api_key=9f8e7d6c5b4a39281706f5e4", "9f8e7d6c5b4a39281706f5e4"],
    ["API_KEY: Zx8Kq2Lm9Np4Rs7Tv1Wy", "Zx8Kq2Lm9Np4Rs7Tv1Wy"],
    ['{"apiKey": "a8F3kL9mQ2xR7vB1nC5d"}', "a8F3kL9mQ2xR7vB1nC5d"],
    ["access_token=ya29a0AfH6SMBx1234abcdEFGH", "ya29a0AfH6SMBx1234abcdEFGH"],
    ["client_secret=GOCSPX-1a2B3c4D5e6F7g8H9i0J", "GOCSPX-1a2B3c4D5e6F7g8H9i0J"],
    ["secret: 4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c", "4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"],
    ["auth_token = 'Ab12Cd34Ef56Gh78Ij90'", "Ab12Cd34Ef56Gh78Ij90"],
    ["x-api-key: 7d8e9f0a1b2c3d4e5f6a7b8c", "7d8e9f0a1b2c3d4e5f6a7b8c"],
  ];
  for (const [text, value] of cases) {
    test(`finds the value of ${text.slice(0, 24)}`, () => assert.deepEqual(found("api_key", text), [value]));
  }
});

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");
const SIGNATURE = "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
const JWT_CONTEXTS = [
  (token: string) => token,
  (token: string) => `token: ${token}`,
  (token: string) => `?jwt=${token}&next=/home`,
  (token: string) => `{"id_token":"${token}"}`,
  (token: string) => `cookie session=${token}; Path=/`,
];
const JWTS = [
  "HS256",
  "HS384",
  "HS512",
  "RS256",
  "RS512",
  "ES256",
  "ES384",
  "PS256",
  "EdDSA",
  "none",
].flatMap((alg, index) =>
  [0, 1, 2].map((variant) => {
    const header = variant === 2 ? { typ: "JWT", alg, kid: `k${index}` } : { alg, typ: "JWT" };
    const payload = { sub: `user-${index}-${variant}`, iat: 1700000000 + index, admin: variant === 1 };
    const signature = alg === "none" ? "" : SIGNATURE.slice(variant);
    return `${b64(header)}.${b64(payload)}.${signature}`;
  }),
);
table(
  "jwt",
  JWTS.map((token, index) => [JWT_CONTEXTS[index % JWT_CONTEXTS.length]!(token), token] as const),
  [
    b64({ alg: "HS256" }),
    `${b64({ alg: "HS256" })}.abc.def`,
    `${b64({ alg: "HS256" })}.${b64({ sub: "x" })}`,
    `eyJzzzzzzz.eyJzzzzzzz.sig`,
    `${b64({ foo: "bar" })}.${b64({ sub: "x" })}.sig`,
    `${b64(["alg"])}.${b64({ sub: "x" })}.sig`,
    `${b64("alg")}.${b64({ sub: "x" })}.sig`,
    "heyJude, don't make it bad",
    "data:application/json;base64,eyJmb28iOiJiYXIifQ==",
    "eyJ",
    "eyJ.eyJ.",
    "eyJhbGciOiJIUzI1NiJ9..sig",
    "eyJhbGci.OiJIUzI1NiJ9.sig",
    `x${b64({ alg: "HS256" })}.${b64({ sub: "x" })}.sig`,
    `${b64({ alg: "HS256" }).slice(0, 6)}`,
    "The header starts with eyJ and that is all",
    "eyJhbGciOiJIUzI1NiJ9 . eyJzdWIiOiJ4In0 . sig",
    "abc.def.ghi",
    "header.payload.signature",
    "a.b.c",
    "eyJ0eXAi.abc.eyJ0eXAi",
    "ZXlK.ZXlK.ZXlK",
    "EYJHBGCIOIJIUZI1NIJ9.EYJZDWIIOIJ4IN0.sig",
    "eyj0exaioijkv1qifq.eyj0exaioijkv1qifq.sig",
    `${b64({ alg: "HS256" })}:${b64({ sub: "x" })}:sig`,
    `${b64({ alg: "HS256" })}/${b64({ sub: "x" })}/sig`,
    "version 1.2.3 eyJ",
    "base64 eyJhbGciOiJIUzI1NiJ9 alone",
    "eyJ!!!.eyJ!!!.sig",
    "a token-like eyJhb.eyJhb.x string",
    `${b64({ alg: "HS256" }).slice(0, -2)}%%.${b64({ sub: "x" })}.sig`,
  ],
);

const SECRET_VALUES = ["hunter2x", "s3cr3t!", "letmein123", "Qwerty!234", "Sup3rS3cret", "12345678"];
table(
  "secret",
  [
    ...SECRET_VALUES.map((value) => [`password=${value}`, value] as const),
    ["password: s3cr3t!", "s3cr3t!"],
    ['{"password": "correct horse battery"}', "correct horse battery"],
    ["passwd=letmein123", "letmein123"],
    ["pwd: Qwerty!234", "Qwerty!234"],
    ["db_password=Sup3rS3cret&user=x", "Sup3rS3cret"],
    ["DB_PASSWORD='p@ss w0rd'", "p@ss w0rd"],
    ['passphrase = "my long pass phrase"', "my long pass phrase"],
    ["PGPASSWORD=abc123xyz psql", "abc123xyz"],
    ["my password is hunter2, don't tell", "hunter2"],
    ["the password is P@ssw0rd", "P@ssw0rd"],
    ...[
      "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7b\n-----END RSA PRIVATE KEY-----",
      "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
      "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\n-----END OPENSSH PRIVATE KEY-----",
      "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSx\n-----END EC PRIVATE KEY-----",
      "-----BEGIN ENCRYPTED PRIVATE KEY-----\\nMIIFHDBOBgkqhkiG9w0BBQ0wQTAp\\n-----END ENCRYPTED PRIVATE KEY-----",
      "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF+abc\n-----END PGP PRIVATE KEY BLOCK-----",
    ].map((block) => [`key:\n${block}\nthanks`, block] as const),
    [
      "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7b (truncated",
      "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7b (truncated",
    ],
    ["Authorization: Bearer abcdefghijklmnop1234", "abcdefghijklmnop1234"],
    ["bearer 0123456789abcdef0123", "0123456789abcdef0123"],
    ["BEARER Zm9vYmFyYmF6cXV4MTIzNDU2", "Zm9vYmFyYmF6cXV4MTIzNDU2"],
    ["Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="],
    ['{"authorization": "basic YWRtaW46c2VjcmV0"}', "YWRtaW46c2VjcmV0"],
    ["postgres://admin:s3cret@db.internal:5432/app", "s3cret"],
    ["mongodb+srv://user:hunter2@cluster0.example.net", "hunter2"],
    ["amqp://guest:guest123@rabbit:5672", "guest123"],
    ["https://bob:pa55@example.com/x", "pa55"],
  ],
  [
    "password reset link",
    "forgot your password?",
    "password: required",
    "password=",
    "password: ********",
    "password: [secret]",
    "password=${DB_PASSWORD}",
    "password: {{ .Values.pw }}",
    "password is required",
    "password is too short",
    "your password is incorrect",
    "the bearer of bad news",
    "bearer token missing",
    "basic questions about billing",
    "Basic plan",
    "BEGIN transaction",
    "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----",
    "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----",
    "https://example.com/path",
    "ftp://ftp.example.com/file",
    "passport number",
    "compass: north",
    "password_hash field",
    "pass=xyz",
    "password: null",
    "password: none",
    "password=true",
    "password: <hidden>",
    "Authorization: Basic",
    "Bearer short",
    "password hint: blue",
    "the secret to success",
  ],
);
