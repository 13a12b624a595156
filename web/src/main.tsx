import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { loadConfig } from './api';
import { Empty, TimePicker, useRefreshTick } from './components/common';
import { Alerts } from './pages/Alerts';
import { Home } from './pages/Home';
import { Logs } from './pages/Logs';
import { Metrics } from './pages/Metrics';
import { ServiceGraph } from './pages/ServiceGraph';
import { ServicePage } from './pages/Service';
import { TracePage } from './pages/Trace';
import { Traces } from './pages/Traces';
import { onLinkClick, useRoute } from './router';
import { link, type Page } from './url';
import './style.css';

const NAV: [Page, string][] = [['home', 'Home'], ['traces', 'Traces'], ['graph', 'Service graph'], ['metrics', 'Metrics'], ['logs', 'Logs'], ['alerts', 'Alerts']];

function initialTheme(): string {
  const t = localStorage.getItem('sprout-theme');
  if (t === 'dark' || t === 'light') return t;
  return matchMedia('(prefers-color-scheme: light)').matches ? 'light' : 'dark';
}

function App() {
  const route = useRoute();
  const tick = useRefreshTick(route.params.refresh);
  const [theme, setTheme] = useState(initialTheme);
  useEffect(() => { document.documentElement.dataset.theme = theme; localStorage.setItem('sprout-theme', theme); }, [theme]);
  useEffect(() => { document.title = `Sprout · ${NAV.find(([p]) => p === route.page)?.[1] ?? (route.page === 'trace' ? 'Trace' : route.page === 'notfound' ? 'Not found' : 'Service')}`; }, [route.page]);
  const section = route.page === 'trace' ? 'traces' : route.page === 'service' ? 'graph' : route.page;
  return (
    <div class="app" onClick={onLinkClick}>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <a class="brand" href={link('home', undefined, {}, route)}><svg viewBox="0 0 16 16" width="18" height="18" aria-hidden="true"><path fill="#3fb950" d="M8 15V8C8 4 5 2 1 2c0 4 3 6 7 6 0-4 3-6 7-6 0 4-3 6-7 6" /></svg> Sprout</a>
        <nav aria-label="Sections">
          {NAV.map(([p, l]) => <a href={link(p, undefined, {}, route)} aria-current={section === p ? 'page' : undefined}>{l}</a>)}
        </nav>
        <div class="spacer" />
        <TimePicker />
        <button class="theme" aria-label={`Switch to ${theme === 'dark' ? 'light' : 'dark'} theme`} onClick={() => setTheme(theme === 'dark' ? 'light' : 'dark')}>{theme === 'dark' ? '☀' : '☾'}</button>
      </header>
      <main id="main">
        {route.page === 'home' && <Home route={route} tick={tick} />}
        {route.page === 'traces' && <Traces route={route} tick={tick} />}
        {route.page === 'trace' && <TracePage route={route} />}
        {route.page === 'graph' && <ServiceGraph route={route} tick={tick} />}
        {route.page === 'service' && <ServicePage route={route} tick={tick} />}
        {route.page === 'metrics' && <Metrics route={route} tick={tick} />}
        {route.page === 'logs' && <Logs route={route} tick={tick} />}
        {route.page === 'alerts' && <Alerts route={route} tick={tick} />}
        {route.page === 'notfound' && (
          <section class="page" aria-labelledby="h-404">
            <h1 id="h-404">Page not found</h1>
            <Empty>There is no page at <code>{route.arg}</code>. The pages are {NAV.map(([p, l], i) => <>{i ? ', ' : ''}<a href={link(p, undefined, {}, route)}>{l}</a></>)}.</Empty>
          </section>
        )}
      </main>
    </div>
  );
}

loadConfig().then(() => render(<App />, document.getElementById('app')!));
