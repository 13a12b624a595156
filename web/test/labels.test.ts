import { describe, expect, it } from 'vitest';
import { buildSelector, matcher, regexLiteral, toggle } from '../src/labels';

describe('label browser selectors', () => {
  it('builds matchers and selectors as Grafana\'s label browsers do', () => {
    expect(matcher('service_name', ['api'])).toBe('service_name="api"');
    expect(matcher('route', ['/a.b', '/c(d)'])).toBe('route=~"/a\\\\.b|/c\\\\(d\\\\)"');
    expect(matcher('q', ['say "hi"'])).toBe('q="say \\"hi\\""');
    expect(regexLiteral('a|b*')).toBe('a\\|b\\*');
    const p = { service_name: ['api', 'db'], env: ['prod'] };
    expect(buildSelector('', p)).toBe('{env="prod", service_name=~"api|db"}');
    expect(buildSelector('up', p)).toBe('up{env="prod", service_name=~"api|db"}');
    expect(buildSelector('up', {})).toBe('up');
    expect(buildSelector('', {})).toBe('');
    expect(buildSelector('', p, 'env')).toBe('{service_name=~"api|db"}');
    expect(buildSelector('', { a: [] })).toBe('');
  });

  it('toggles values', () => {
    let p = toggle({}, 'a', 'y');
    p = toggle(p, 'a', 'x');
    expect(p).toEqual({ a: ['x', 'y'] });
    p = toggle(toggle(p, 'a', 'x'), 'a', 'y');
    expect(p).toEqual({});
  });
});
