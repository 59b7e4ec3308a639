import type { Contender } from './contender.js';
import { direct } from './direct.js';
import { haproxyHttp, haproxyTcp } from './haproxy.js';
import { httpProxy3 } from './http-proxy-3.js';
import { nginx } from './nginx.js';
import { tandemL4, tandemL7 } from './tandem.js';

/** Every contender, in the order they are measured and listed. */
export const CONTENDERS: readonly Contender[] = [
  direct,
  tandemL7,
  tandemL4,
  haproxyHttp,
  haproxyTcp,
  nginx,
  httpProxy3,
];
