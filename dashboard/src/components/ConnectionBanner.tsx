import { bannerFor, type ConnectionState } from "../connection";
import { useNow } from "../hooks";

/** "Connection lost" while GPM does not answer, then "Connection restored" for a moment. */
export function ConnectionBanner({ state }: { state: ConnectionState }) {
  const now = useNow(1000, state.status === "lost");
  const banner = bannerFor(state, now);
  if (banner === null) return null;
  return (
    <div role="alert" className={`banner banner-${banner.kind}`} data-testid="connection-banner">
      {banner.text}
    </div>
  );
}
