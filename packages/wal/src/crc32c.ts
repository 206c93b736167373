/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78) with slicing-by-8 tables: eight
 * bytes per step instead of one, which keeps checksumming off the ingest hot path's
 * critical share of CPU.
 */

const POLYNOMIAL = 0x82f63b78;
const TABLE_SIZE = 256;

/** Eight 256-entry tables packed into one array: table k lives at [k * 256, (k + 1) * 256). */
const TABLES = buildTables();

function buildTables(): Int32Array {
  const tables = new Int32Array(8 * TABLE_SIZE);
  for (let n = 0; n < TABLE_SIZE; n++) {
    let crc = n;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ POLYNOMIAL : crc >>> 1;
    tables[n] = crc;
  }
  for (let n = 0; n < TABLE_SIZE; n++) {
    let crc = tables[n]!;
    for (let k = 1; k < 8; k++) {
      crc = tables[crc & 0xff]! ^ (crc >>> 8);
      tables[k * TABLE_SIZE + n] = crc;
    }
  }
  return tables;
}

/**
 * CRC32C of `data`. Pass a previous result as `initial` to continue a checksum over
 * concatenated input: `crc32c(b, crc32c(a)) === crc32c(a ++ b)`.
 */
export function crc32c(data: Uint8Array, initial = 0): number {
  const t = TABLES;
  let crc = ~initial;
  let i = 0;
  const length = data.length;
  const end8 = length - (length % 8);
  while (i < end8) {
    const low = crc ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24));
    crc =
      t[7 * TABLE_SIZE + (low & 0xff)]! ^
      t[6 * TABLE_SIZE + ((low >>> 8) & 0xff)]! ^
      t[5 * TABLE_SIZE + ((low >>> 16) & 0xff)]! ^
      t[4 * TABLE_SIZE + (low >>> 24)]! ^
      t[3 * TABLE_SIZE + data[i + 4]!]! ^
      t[2 * TABLE_SIZE + data[i + 5]!]! ^
      t[TABLE_SIZE + data[i + 6]!]! ^
      t[data[i + 7]!]!;
    i += 8;
  }
  while (i < length) crc = t[(crc ^ data[i++]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}
