import { useEffect, useState } from "react";
import { App } from "./App";
import { FleetPage } from "./components/FleetPage";

/** The page in the URL's hash: "#/fleet" is the fleet, anything else this machine. */
function pageOf(hash: string): "machine" | "fleet" {
  return hash.startsWith("#/fleet") ? "fleet" : "machine";
}

/** This machine's dashboard, or the fleet page, with a link between them. */
export function Root() {
  const [page, setPage] = useState(() => pageOf(window.location.hash));
  useEffect(() => {
    const onHash = (): void => setPage(pageOf(window.location.hash));
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  return (
    <>
      <nav className="pages" aria-label="Pages">
        <a href="#/" aria-current={page === "machine" ? "page" : undefined}>
          This machine
        </a>
        <a href="#/fleet" data-testid="fleet-link" aria-current={page === "fleet" ? "page" : undefined}>
          Fleet
        </a>
      </nav>
      {page === "fleet" ? <FleetPage /> : <App />}
    </>
  );
}
