"""Bounce notices (D1, D1b), pure: whether a sender gets one, and the mail in their language.

A notice goes only to a *registered* party (their registered address, or for a seller the
customer-service address of their settings): never to an address that merely appeared on a
mail, so a forged sender can never be made to receive mail (no backscatter). Sellers can turn
off notices for bounces caused by a buyer's opt-out (``opt_out_bounce_notices``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from bsm_shared.contract.payloads import Bounced

#: Reason codes that come from a buyer's opt-out (C6): the ones D1b lets sellers silence.
OPT_OUT_CODES = frozenset({"buyer_opted_out"})


@dataclass(frozen=True)
class Texts:
    subject: str
    intro: str
    rule: str
    why: str
    todo: str
    stage: str
    footer: str


TEXTS: dict[str, Texts] = {
    "en": Texts("Your message was not delivered", "Your message could not be delivered.",
                "Rule", "Why", "What you can do", "Stopped at",
                "This is an automatic notice from the marketplace's messaging service."),
    "es": Texts("Tu mensaje no se ha entregado", "Tu mensaje no se ha podido entregar.",
                "Regla", "Motivo", "Qué puedes hacer", "Detenido en",
                "Este es un aviso automático del servicio de mensajería del marketplace."),
    "fr": Texts("Votre message n'a pas été remis", "Votre message n'a pas pu être remis.",
                "Règle", "Pourquoi", "Ce que vous pouvez faire", "Arrêté à l'étape",
                "Ceci est un avis automatique du service de messagerie de la place de marché."),
    "it": Texts("Il tuo messaggio non è stato consegnato",
                "Non è stato possibile consegnare il tuo messaggio.",
                "Regola", "Motivo", "Cosa puoi fare", "Fermato nella fase",
                "Questo è un avviso automatico del servizio di messaggistica del marketplace."),
    "pt": Texts("A sua mensagem não foi entregue", "Não foi possível entregar a sua mensagem.",
                "Regra", "Motivo", "O que pode fazer", "Parada na etapa",
                "Este é um aviso automático do serviço de mensagens do marketplace."),
    "de": Texts("Ihre Nachricht wurde nicht zugestellt",
                "Ihre Nachricht konnte nicht zugestellt werden.",
                "Regel", "Grund", "Was Sie tun können", "Angehalten bei",
                "Dies ist eine automatische Benachrichtigung des Nachrichtendienstes des "
                "Marktplatzes."),
}


def language(locale: str) -> str:
    """The notice language for a BCP 47 locale (``es-MX`` → ``es``); English otherwise."""
    lang = locale.replace("_", "-").split("-")[0].lower()
    return lang if lang in TEXTS else "en"


def wants_notice(bounce: Bounced, *, sender_registered: bool, sender_role: str | None,
                 seller_opted_out: bool) -> bool:
    """Whether the sender of a bounced message gets a notice (D1, D1b)."""
    if not bounce.sender_party_id or not sender_registered:
        return False  # unknown or unverified sender: never mail them (no backscatter)
    if sender_role == "seller" and seller_opted_out and bounce.reason_code in OPT_OUT_CODES:
        return False
    return True


def notice_mail(
    bounce: Bounced, *, to: str, locale: str, domain: str, now: datetime
) -> EmailMessage:
    """The notice to the sender's own address ``to``."""
    t = TEXTS[language(locale)]
    lines = [t.intro, ""]
    if bounce.rule:
        lines.append(f"{t.rule}: {bounce.rule}")
    lines.append(f"{t.stage}: {bounce.stage}")
    lines.append(f"{t.why}: {bounce.explanation}")
    for v in bounce.violations[1:]:
        lines.append(f"  - {v.rule}: {v.detail}")
    if bounce.remedy:
        lines.append(f"{t.todo}: {bounce.remedy}")
    lines += ["", t.footer]
    mail = EmailMessage()
    mail["From"] = formataddr(("Marketplace", f"no-reply@{domain}"))
    mail["To"] = to
    mail["Subject"] = t.subject
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = f"<notice-{bounce.message_id}@{domain}>"
    mail["In-Reply-To"] = f"<{bounce.message_id}@{domain}>"
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    mail["Content-Language"] = language(locale)
    mail.set_content("\n".join(lines))
    return mail
