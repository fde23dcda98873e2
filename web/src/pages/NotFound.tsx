import { Empty, Link } from "../components/ui";
import { useI18n } from "../lib/i18n";

export function NotFoundPage({ path }: { path: string }) {
  const { t } = useI18n();
  return (
    <div className="page" data-testid="page-not-found">
      <Empty title={t("not_found", { path })} hint={<Link href="/">{t("go_overview")}</Link>} />
    </div>
  );
}
