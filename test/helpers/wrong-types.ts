/**
 * Wrong types as a hostile client sent them (issue 9): [command type, payload as JSON text, message].
 * Each message says what is wrong with the value sent, never "is required" for a value that is there.
 * `account` names an account that exists in the test's database.
 */
export function wrongTypeCases(account: string): [string, string, RegExp][] {
  return [
    ['credit', '{"account":5,"amount":"1"}', /^account: must be a string, not a number$/],
    ['credit', '{"account":["x"],"amount":"1"}', /^account: must be a string, not an array$/],
    ['credit', '{"account":{},"amount":"1"}', /^account: must be a string, not an object$/],
    ['credit', `{"id":5,"account":"${account}","amount":"1"}`, /^id: must be a string, not a number$/],
    ['credit', `{"id":null,"account":"${account}","amount":"1"}`, /^id: must be a string, not null$/],
    ['open_account', '{"account":"wrong-type-z","currency":5}', /^currency: must be a string, not a number$/],
    [
      'hold',
      `{"account":"${account}","amount":"1","ttl_seconds":"60"}`,
      /^ttl_seconds: must be a JSON number of seconds, not a string$/,
    ],
    [
      'hold',
      `{"account":"${account}","amount":"1","ttl_seconds":1.5}`,
      /^ttl_seconds: must be a positive whole number/,
    ],
    [
      'hold',
      `{"account":"${account}","amount":"1","ttl_seconds":true}`,
      /^ttl_seconds: must be a JSON number of seconds, not true$/,
    ],
    [
      'hold',
      `{"account":"${account}","amount":"1","expires_at":1893456000}`,
      /^expires_at: must be an ISO 8601 timestamp string, not a number$/,
    ],
    ['release', '{"hold":5}', /^hold: must be a string, not a number$/],
    ['credit', '{"amount":"1"}', /^account: is required$/],
  ];
}
