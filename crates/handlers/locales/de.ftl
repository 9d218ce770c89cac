# Die Seiten des Dienstes, auf Deutsch.

## Von mehreren Seiten genutzt

common-form-expired = Das Formular ist abgelaufen. Bitte versuchen Sie es erneut.
common-form-expired-go-back = Das Formular ist abgelaufen. Bitte gehen Sie zurück und versuchen Sie es erneut.
common-invalid-request = Ungültige Anfrage
common-something-went-wrong = Etwas ist schiefgelaufen
common-please-try-again = Bitte versuchen Sie es erneut.
common-not-allowed = Nicht erlaubt
common-not-an-email = Das ist keine E-Mail-Adresse. Geben Sie eine Adresse wie alice@example.com ein.
common-wrong-code = Das ist nicht der gesendete Code. Prüfen Sie die Nachricht und versuchen Sie es erneut.
common-code-expired = Dieser Code ist abgelaufen
common-passwords-differ = Die neuen Passwörter stimmen nicht überein.
common-password-too-easy = Dieses Passwort ist zu leicht zu erraten. Versuchen Sie es mit einem längeren Passwort oder mit einigen Wörtern, die nichts miteinander zu tun haben.
common-username-taken = Dieser Benutzername ist vergeben.
common-accept-terms = Akzeptieren Sie die Nutzungsbedingungen, um ein Konto zu erstellen.
common-account-not-created = Das Konto wurde nicht erstellt
common-request-cannot-be-completed = Diese Anfrage kann nicht abgeschlossen werden
common-choose-allow-or-deny = Wählen Sie „Erlauben“ oder „Ablehnen“.
common-request-refused = Die Anfrage der Anwendung wurde abgelehnt.
common-return-to = Zurück zu { $host }
common-signed-in-end = {" "}angemeldet.

## Drosselung: { $seconds } ist die Wartezeit

throttle-wait = { $seconds ->
    [one] Versuchen Sie es in einer Sekunde erneut.
   *[other] Versuchen Sie es in { $seconds } Sekunden erneut.
}
throttle-attempts = Zu viele Versuche. { throttle-wait }
throttle-codes-sent = Es wurden zu viele Codes gesendet. { throttle-wait }
throttle-codes-tried = Es wurden zu viele Codes ausprobiert. { throttle-wait }
throttle-links = Es wurden zu viele Links angefordert. { throttle-wait }
throttle-from-address-attempts = Von Ihrer IP-Adresse kamen zu viele Versuche. { throttle-wait }
throttle-from-address-sign-in-attempts = Von Ihrer IP-Adresse kamen zu viele Anmeldeversuche. { throttle-wait }
throttle-from-address-sign-ins = Von Ihrer IP-Adresse kamen zu viele Anmeldeanfragen. { throttle-wait }
throttle-from-address-codes = Von Ihrer IP-Adresse kamen zu viele Codes. { throttle-wait }

## Was die Richtlinie ablehnt

violation-username-all-numeric = Ein Benutzername muss mindestens ein Zeichen enthalten, das keine Ziffer ist.
violation-username = Dieser Benutzername ist hier nicht erlaubt.
violation-email-domain = Adressen dieser Domain sind hier nicht erlaubt.
violation-email = Diese E-Mail-Adresse ist hier nicht erlaubt.
violation-password-too-short = { $min ->
    [one] Ein Passwort muss mindestens ein Zeichen lang sein.
   *[other] Ein Passwort muss mindestens { $min } Zeichen lang sein.
}
violation-password-lowercase = Ein Passwort muss einen Kleinbuchstaben enthalten.
violation-password-uppercase = Ein Passwort muss einen Großbuchstaben enthalten.
violation-password-digit = Ein Passwort muss eine Ziffer enthalten.
violation-requester = Das ist von Ihrem Standort aus nicht erlaubt.

## Registrierungstokens

token-unknown = Dieses Registrierungstoken ist nicht gültig.
token-revoked = Dieses Registrierungstoken wurde widerrufen.
token-expired = Dieses Registrierungstoken ist abgelaufen.
token-used-up = Dieses Registrierungstoken wurde bereits so oft verwendet wie erlaubt.

## Was eine Anwendung verlangt, in Worten

scope-openid = Erfahren, wer Sie sind
scope-email = Ihre E-Mail-Adresse sehen
scope-matrix-api = Ihr Matrix-Konto nutzen: Nachrichten in Ihrem Namen lesen und senden
scope-matrix-guest = Ihr Matrix-Konto als Gast nutzen
scope-synapse-admin = Den Homeserver verwalten
scope-mas-admin = Diesen Authentifizierungsdienst verwalten
scope-mas-graphql = Ihr Konto verwalten
scope-device = Dieses Gerät anmelden: { $device }
scope-unknown = Etwas, das dieser Dienst nicht beschreibt: { $scope }

## Fehler, die auf jeder Seite auftreten können

error-unavailable = Vorübergehend nicht verfügbar
error-unavailable-detail = Der Dienst kann seine Datenbank nicht erreichen. Bitte versuchen Sie es gleich noch einmal.
error-homeserver-down = Der Homeserver antwortet nicht
error-homeserver-down-detail = Ihre Änderung konnte auf dem Homeserver nicht vorgenommen werden. Bitte versuchen Sie es gleich noch einmal.
error-homeserver-refused = Der Homeserver hat die Änderung abgelehnt
error-homeserver-refused-detail = Ihre Änderung konnte auf dem Homeserver nicht vorgenommen werden. Bitte versuchen Sie es später erneut.

## Die Seite, die einer Anwendung eine Antwort übergibt

page-continue = Weiter
page-error-for-developers = Für die Entwickler der Anwendung:
page-error-access-denied = Die Anwendung hat keinen Zugriff erhalten.
page-error-interaction-required = Die Anwendung wollte ohne Sie fortfahren, aber dafür müssen Sie sich zuerst anmelden oder zustimmen.
page-form-too-large = Das gesendete Formular ist zu groß.
page-form-not-a-form = Was gesendet wurde, ist kein Formular.
page-form-too-slow = Das Formular hat zu lange gebraucht, um anzukommen. Bitte versuchen Sie es erneut.
page-form-unreadable = Das Formular konnte nicht gelesen werden: Ein Feld enthält einen Zeilenumbruch oder ein anderes Zeichen, das nicht verwendet werden kann.

## Die Kontoseite (account.html)

account-title = Ihr Konto
account-profile = Profil
account-username = Benutzername
account-matrix-id = Matrix-ID
account-display-name = Anzeigename
account-display-name-none = keiner
account-new-display-name = Neuer Anzeigename
account-save = Speichern
account-password = Passwort
account-current-password = Aktuelles Passwort
account-new-password = Neues Passwort
account-new-password-again = Neues Passwort wiederholen
account-sign-out-others-too = Alle anderen Sitzungen abmelden
account-change-password = Passwort ändern
account-security = Sitzungen und Sicherheit
# { $when } ist Datum und Uhrzeit, etwa 2025-01-31 14:05 UTC
account-signed-in-at = Dieser Browser hat sich am { $when } angemeldet.

## Hinweise nach einer Änderung, auf der Konto- und der Sitzungsseite

account-notice-display-name = Ihr Anzeigename wurde geändert.
account-notice-password = Ihr Passwort wurde geändert.
account-notice-password-everywhere = Ihr Passwort wurde geändert, und alle anderen Sitzungen wurden abgemeldet.
sessions-notice-ended = Die Sitzung wurde abgemeldet.
sessions-notice-renamed = Das Gerät wurde umbenannt.
sessions-notice-everywhere = Alle anderen Sitzungen wurden abgemeldet.
emails-notice-added = Die E-Mail-Adresse wurde hinzugefügt.
emails-notice-removed = Die E-Mail-Adresse wurde entfernt.

## Bestätigungsseiten heikler Aktionen (account_confirm.html)
## Die Meldungen „-before“ und „-after“ umgeben die fett gesetzte Matrix-ID.

account-deactivate-title = Ihr Konto deaktivieren
account-deactivate-intro-before = Das Deaktivieren des Kontos
account-deactivate-intro-after = meldet Sie überall ab, und niemand kann sich mehr damit anmelden. Sie selbst können das nicht rückgängig machen.
account-erase = Auch meine Nachrichten und mein Profil auf dem Homeserver löschen
account-deactivate-button = Mein Konto deaktivieren
account-sign-out-others-title = Alle anderen Sitzungen abmelden
account-sign-out-others-intro-before = Alle anderen Browser und alle Geräte, die als
account-sign-out-others-intro-after = angemeldet sind, werden abgemeldet, und der Homeserver vergisst diese Geräte. Dieser Browser bleibt angemeldet.
account-reset-title = Ihre Identität zurücksetzen
account-reset-heading = Ihre kryptografische Identität zurücksetzen
account-reset-intro = Wenn Sie den Zugriff auf alle Geräte und Ihren Wiederherstellungsschlüssel verloren haben, kann Ihr Matrix-Client Ihre Identitätsschlüssel ersetzen.
account-reset-allow-before = Wenn Sie es hier erlauben, kann
account-reset-allow-after = dies in den nächsten 10 Minuten ohne weitere Prüfung tun.
account-reset-unreadable = Nachrichten, die nur Ihre alte Identität lesen konnte, bleiben unlesbar.
account-reset-button = Zurücksetzen erlauben
account-confirm-password = Ihr Passwort, um zu bestätigen, dass Sie es sind
account-wrong-password = Falsches Passwort.

## Antworten auf Änderungen am Konto

account-unusable = Dieses Konto kann nicht verwendet werden
account-unusable-detail = Es ist gesperrt oder deaktiviert.
account-off-display-name = Das Ändern des Anzeigenamens ist auf diesem Server deaktiviert. Wenden Sie sich an die Administratoren.
account-off-password = Das Ändern des Passworts ist auf diesem Server deaktiviert. Wenden Sie sich an die Administratoren.
account-off-deactivate = Das Deaktivieren von Konten ist auf diesem Server deaktiviert. Wenden Sie sich an die Administratoren.
account-display-name-invalid = Dieser Anzeigename kann nicht verwendet werden
account-display-name-invalid-detail = Ein Anzeigename darf höchstens { $max } Zeichen lang sein und keine Zeilenumbrüche oder Steuerzeichen enthalten.
account-password-not-changed = Ihr Passwort wurde nicht geändert
account-new-password-too-easy = Das neue Passwort ist zu leicht zu erraten. Versuchen Sie es mit einem längeren Passwort oder mit einigen Wörtern, die nichts miteinander zu tun haben.
account-current-password-wrong = Das aktuelle Passwort ist falsch.
account-reset-allowed = Zurücksetzen der Identität erlaubt
account-reset-allowed-detail = Kehren Sie zu Ihrem Matrix-Client zurück und setzen Sie Ihre Identität dort innerhalb der nächsten 10 Minuten zurück.
account-deactivated = Ihr Konto ist deaktiviert
account-deactivated-detail = Sie sind überall abgemeldet, und niemand kann sich mehr mit diesem Konto anmelden.

## E-Mail-Adressen: der Abschnitt der Kontoseite, die Code-Seite (email_code.html), Ablehnungen

emails-heading = E-Mail-Adressen
emails-remove = Entfernen
emails-none = Diesem Konto ist keine E-Mail-Adresse zugeordnet.
emails-add-label = Eine Adresse hinzufügen
emails-send-code = Code senden
emails-check-title = Prüfen Sie Ihre E-Mails
# „-before“ und „-after“ umgeben die fett gesetzte Adresse
emails-on-its-way-before = Ein Code wurde an
emails-on-its-way-after = {" "}gesendet.
emails-may-take-a-minute = Es kann eine Minute dauern, bis er ankommt.
emails-code-label = Der 6-stellige Code
emails-add-button = Adresse hinzufügen
emails-off = Das Ändern von E-Mail-Adressen ist auf diesem Server deaktiviert. Wenden Sie sich an die Administratoren.
emails-not-added = Die Adresse wurde nicht hinzugefügt
emails-already-yours = Diese Adresse ist bereits Ihrem Konto zugeordnet.
emails-taken = Diese Adresse wird hier bereits von einem Konto verwendet.
emails-code-expired-detail = Codes gelten eine Stunde lang für höchstens fünf Versuche und nur in dem Browser, in dem sie angefordert wurden. Fügen Sie die Adresse erneut hinzu, um einen neuen Code zu erhalten.
emails-add-again = Bitte fügen Sie die Adresse erneut hinzu.
emails-no-such-address = Adresse nicht gefunden
emails-no-such-address-detail = Diese Adresse ist Ihrem Konto nicht zugeordnet.

## Sitzungen und Geräte (sessions.html, session.html)

sessions-title = Sitzungen
sessions-heading = Sitzungen und Geräte
# „-before“ und „-after“ umgeben den fett gesetzten Benutzernamen
sessions-intro-before = Hier sehen Sie, wo
sessions-intro-after = angemeldet ist.
sessions-intro-sign-out = Wenn Sie ein Gerät abmelden, endet sein Zugang zu Matrix sofort.
# In Klammern, nach der Art der Sitzung
sessions-this-browser = dieser Browser
sessions-device = Gerät { $device }
# { $when } ist Datum und Uhrzeit, etwa 2025-01-31 14:05 UTC; { $ip } eine IP-Adresse
sessions-last-active = Zuletzt aktiv am { $when }
sessions-last-active-from = Zuletzt aktiv am { $when } von { $ip }
sessions-signed-in = Angemeldet am { $when }
sessions-sign-out = Abmelden
sessions-hidden = { $count ->
    [one] Eine weitere Sitzung wird nicht angezeigt.
   *[other] { $count } weitere Sitzungen werden nicht angezeigt.
}
sessions-kind = Art
sessions-kind-browser = Browser
sessions-kind-application = Anwendung
sessions-matrix-client = Matrix-Client
sessions-browser-name = Bei diesem Dienst angemeldet
sessions-device-id = Geräte-ID
sessions-application = Anwendung
sessions-signed-in-label = Angemeldet
sessions-last-active-label = Zuletzt aktiv
sessions-when-from = { $when } von { $ip }
sessions-not-recorded = nicht erfasst
sessions-user-agent = Browser oder Anwendung
sessions-may = Diese Sitzung darf:
sessions-as-asked = Wie angefragt
sessions-device-name = Gerätename
sessions-rename = Umbenennen
sessions-end-device = Dieses Gerät abmelden
sessions-end-session = Diese Sitzung abmelden
sessions-no-such-session = Sitzung nicht gefunden
sessions-no-such-session-detail = Keine Ihrer offenen Sitzungen hat diese ID. Sie wurde möglicherweise bereits abgemeldet.
sessions-no-such-device = Gerät nicht gefunden
sessions-no-such-device-detail = Keine Ihrer offenen Sitzungen verwendet dieses Gerät. Es wurde möglicherweise bereits abgemeldet.
sessions-name-invalid = Dieser Name kann nicht verwendet werden
sessions-name-invalid-detail = Ein Gerätename muss 1 bis { $max } Zeichen lang sein und darf keine Zeilenumbrüche oder Steuerzeichen enthalten.

## Die Navigation der Kontoseiten (account_nav.html)

nav-account = Konto
nav-sessions = Sitzungen
nav-sign-out = Abmelden

## Registration: the form (register.html)

register-create-an-account = Ein Konto erstellen
register-heading = Ein Konto bei { $service_name } erstellen
register-username = Benutzername
register-email = E-Mail-Adresse
register-password = Passwort
register-password-confirm = Passwort bestätigen
register-token = Registrierungstoken
# "I agree to the" + link "terms of service": the checkbox's label, in two parts.
register-terms-before = Ich akzeptiere die
register-terms-link = Nutzungsbedingungen
register-create-account = Konto erstellen
register-have-account = Haben Sie bereits ein Konto?
register-sign-in = Anmelden

## Registration: what the form is told

register-closed = Die Registrierung ist geschlossen
register-closed-detail = Bei diesem Dienst können Sie nicht selbst ein Konto erstellen. Bitten Sie den Administrator um ein Konto.
register-username-invalid = Ein Benutzername darf nur Kleinbuchstaben, Ziffern und . _ = - / + enthalten (höchstens 255 Zeichen).
register-passwords-differ = Die Passwörter stimmen nicht überein.
register-token-required = Ein Registrierungstoken ist erforderlich.
register-captcha-missing = Lösen Sie das CAPTCHA, um ein Konto zu erstellen.
register-captcha-wrong = Das CAPTCHA wurde nicht gelöst. Bitte versuchen Sie es erneut.
register-captcha-unavailable = Das CAPTCHA kann gerade nicht geprüft werden. Bitte versuchen Sie es später erneut.
register-homeserver-unreachable = Der Homeserver ist gerade nicht erreichbar. Bitte versuchen Sie es später erneut.
register-username-unavailable = Dieser Benutzername ist nicht verfügbar.
register-token-no-longer-usable = Dieses Registrierungstoken kann nicht mehr verwendet werden.
register-address-taken = Diese Adresse wird hier bereits von einem Konto verwendet. Melden Sie sich an oder stellen Sie dieses Konto wieder her.
register-finished-already = Diese Registrierung ist bereits abgeschlossen.
register-code-expired-detail = Codes gelten eine Stunde lang für höchstens fünf Versuche und nur in dem Browser, in dem das Formular ausgefüllt wurde. Füllen Sie es erneut aus, um einen neuen Code zu erhalten.

## Password recovery: asking for a link (recover.html, recover_sent.html)

recover-title = Passwort vergessen?
recover-intro = Geben Sie die E-Mail-Adresse Ihres Kontos ein. Wenn hier ein Konto diese Adresse verwendet, wird ein Link zum Festlegen eines neuen Passworts an sie gesendet.
recover-send-link = Link senden
recover-back-to-sign-in = Zurück zur Anmeldung
recover-check-email = Prüfen Sie Ihre E-Mails
# "If an account here uses" <address> ", a link to set a new password is on its way there."
# German puts the address at the end of the first part: "… ist unterwegs an" <address> ", falls …".
recover-sent-before = Falls hier ein Konto die Adresse
recover-sent-after = {" "}verwendet, wurde ein Link zum Festlegen eines neuen Passworts dorthin gesendet.
recover-sent-validity = { $minutes ->
    [one] Er kann nur einmal und nur eine Minute lang verwendet werden.
   *[other] Er kann nur einmal und nur { $minutes } Minuten lang verwendet werden.
}
# "Nothing arrived? Check the address, or" + link "ask again" + "."
recover-sent-retry-before = Nichts angekommen? Prüfen Sie die Adresse oder
recover-sent-retry-link = fordern Sie einen neuen Link an
recover-sent-retry-after = .
recover-off = Die Passwortwiederherstellung ist deaktiviert
recover-off-detail = Dieser Dienst sendet keine Links zum Festlegen eines neuen Passworts. Bitten Sie den Administrator um Hilfe.

## Password recovery: the link (recover_password.html)

recover-password-title = Ein neues Passwort festlegen
# "For the account of" <address> "."
recover-password-for-before = Für das Konto mit der Adresse
recover-password-for-after = .
recover-new-password = Neues Passwort
recover-new-password-confirm = Neues Passwort bestätigen
recover-sign-out-everywhere = Alle Sitzungen dieses Kontos abmelden
recover-set-password = Passwort festlegen
recover-link-dead = Dieser Link funktioniert nicht mehr
recover-link-dead-detail = { $minutes ->
    [one] Ein Wiederherstellungslink kann nur einmal und nur eine Minute nach dem Versand verwendet werden. Fordern Sie einen neuen an.
   *[other] Ein Wiederherstellungslink kann nur einmal und nur { $minutes } Minuten nach dem Versand verwendet werden. Fordern Sie einen neuen an.
}
recover-ask-new-link = Einen neuen Link anfordern
recover-done-title = Ihr Passwort wurde festgelegt
recover-done = Melden Sie sich mit dem neuen Passwort an.
recover-done-everywhere = Alle Sitzungen des Kontos wurden beendet. Melden Sie sich mit dem neuen Passwort an.

## The sign-in page (login.html)

login-title = Anmelden
login-heading = Bei { $service_name } anmelden
login-continue-with = Weiter mit { $provider }
login-or-password = Oder melden Sie sich mit Ihrem Passwort an:
login-username-or-email = Benutzername oder E-Mail-Adresse
login-username = Benutzername
login-password = Passwort
login-forgot-password = Passwort vergessen?
login-no-account = Noch kein Konto?
login-create-account = Konto erstellen

## Why a sign-in with a password is refused

login-passwords-disabled = Die Anmeldung mit Passwort ist deaktiviert
login-passwords-disabled-detail = Dieser Dienst akzeptiert keine Passwörter.
login-username-too-long = Dieser Benutzername ist zu lang.
login-wrong-credentials = Falscher Benutzername oder falsches Passwort.
login-account-locked = Dieses Konto ist gesperrt oder deaktiviert.

## The page of someone already signed in (continue.html): "You are signed in as alice (@alice:example.com)."

continue-title = Angemeldet
continue-heading = Sie sind angemeldet
continue-as = Sie sind als
continue-continue-as = Weiter als { $username }
continue-sign-out = Abmelden, um sich mit einem anderen Konto anzumelden

## Linking an identity provider's account to the account signed in (upstream.html)
## "You are signed in to { $service_name } as" is followed by the username and "."
## "Link the { $provider } account" is followed by the provider's account name (when
## known), then by upstream-link-question-end.

upstream-link-heading = Ihr Konto bei { $provider } verknüpfen
upstream-link-signed-in-as = Sie sind bei { $service_name } als
upstream-link-question = Das Konto bei { $provider }
upstream-link-question-end = mit diesem Konto verknüpfen, damit Sie sich künftig mit { $provider } anmelden können?
upstream-link-accounts = Konten verknüpfen
upstream-not-you = Nicht Sie? Abmelden

## Creating an account through an identity provider (upstream.html)
## "You signed in with { $provider }" [ "as" <account name> ] ". " upstream-creates-account
## upstream-mxid <Matrix ID> upstream-mxid-end
## upstream-use-displayname <display name> upstream-use-displayname-end
## upstream-add-email <email address> upstream-add-email-end
## upstream-agree-to <link: upstream-terms-of-service>

upstream-register-heading = Ihr Konto erstellen
upstream-signed-in-with = Angemeldet mit { $provider }
upstream-signed-in-as = als
upstream-creates-account = Dafür wird ein Konto bei { $service_name } erstellt.
upstream-mxid = Ihre Matrix-ID lautet dann
upstream-mxid-end = , wie von { $provider } angegeben.
upstream-use-displayname = Den Namen
upstream-use-displayname-end = als Anzeigenamen verwenden
upstream-displayname-label = Anzeigename:
upstream-add-email = Die Adresse
upstream-add-email-end = zu Ihrem Konto hinzufügen
upstream-email-label = E-Mail-Adresse:
upstream-agree-to = Ich akzeptiere die
upstream-terms-of-service = Nutzungsbedingungen
upstream-create-account = Konto erstellen
upstream-have-account = Haben Sie bereits ein Konto?
upstream-sign-in-to-link = Melden Sie sich an, um es zu verknüpfen

## Failures of a sign-in through an identity provider
## { $detail } is a technical detail, in English, or the provider's own words.

upstream-too-many-attempts = Zu viele Versuche
upstream-unknown-provider = Unbekannte Anmeldemethode
upstream-unknown-provider-detail = Dieser Identitätsanbieter wird hier nicht (oder nicht mehr) angeboten.
upstream-misconfigured = Diese Anmeldemethode ist falsch konfiguriert
upstream-misconfigured-detail = Bitte informieren Sie den Administrator: { $detail }.
upstream-secret-unreadable = das Client-Secret kann nicht gelesen werden
upstream-public-base-unjoinable = http.public_base lässt sich nicht um einen Pfad ergänzen
upstream-failed = Die Anmeldung mit { $provider } hat nicht funktioniert
upstream-error-unreachable = Der Identitätsanbieter ist nicht erreichbar: { $detail }. Bitte versuchen Sie es erneut.
upstream-error-configuration = Der Identitätsanbieter ist falsch konfiguriert: { $detail }. Bitte versuchen Sie es erneut.
upstream-error-token-refused = Der Identitätsanbieter hat den Austausch des Codes abgelehnt: { $detail }. Bitte versuchen Sie es erneut.
upstream-error-id-token = Das ID-Token des Identitätsanbieters wurde abgelehnt: { $detail }. Bitte versuchen Sie es erneut.
upstream-error-userinfo = Die Userinfo-Antwort des Identitätsanbieters wurde abgelehnt: { $detail }. Bitte versuchen Sie es erneut.
upstream-error-logout-token = Das Abmelde-Token wurde abgelehnt: { $detail }. Bitte versuchen Sie es erneut.
upstream-cancelled = Die Anmeldung wurde beim Anbieter abgebrochen oder abgelehnt ({ $detail }).
upstream-provider-error = Der Anbieter hat mit einem Fehler geantwortet ({ $detail }). Bitte versuchen Sie es erneut.
upstream-stale-trip = Diese Anmeldung kann nicht abgeschlossen werden
upstream-stale-trip-detail = Sie ist unbekannt, wurde bereits verwendet, ist abgelaufen oder wurde in einem anderen Browser begonnen. Beginnen Sie auf der Anmeldeseite von vorn.
upstream-account-locked = Dieses Konto ist gesperrt oder deaktiviert
upstream-account-locked-detail = Wenden Sie sich an den Administrator dieses Dienstes.
upstream-username-exists = Ein Konto mit diesem Benutzernamen existiert bereits
upstream-username-exists-detail = { $username } ist hier bereits vergeben, und Ihr Konto bei { $provider } kann nicht damit verknüpft werden. Wenden Sie sich an den Administrator.
upstream-invalid-username = `{ $username }` kann kein Benutzername sein: Verwenden Sie Kleinbuchstaben, Ziffern und . _ = - / + (höchstens 255 Zeichen).

## Eine Anwendung zulassen (die Zustimmungsseite, auch für die Anfrage eines Geräts)

consent-title = Zugriff erlauben
consent-heading = { $client } den Zugriff auf Ihr Konto erlauben?
# Gefolgt vom Benutzernamen in Fettschrift, dann „.“; auch auf der Anmeldeseite eines Matrix-Clients.
consent-signed-in-as = Sie sind als
# Gefolgt von der Adresse der Anwendung als Link, dann „.“.
consent-client-claims = Nach eigenen Angaben handelt es sich um
consent-unverified = Nicht verifizierte Anwendung.
consent-unverified-detail = Diese Anwendung hat sich selbst bei { $service } registriert: Name und Adresse oben sind ihre eigenen Angaben und wurden von niemandem geprüft.
consent-unverified-device = Erlauben Sie den Zugriff nur, wenn Sie diese Anmeldung selbst auf einem Gerät direkt vor Ihnen begonnen haben: Wer Ihnen einen Code geschickt hat, den Sie hier eingeben sollen, versucht, in Ihr Konto zu gelangen.
# Gefolgt von der Liste dessen, worum die Anwendung bittet (siehe „scope-*“).
consent-asks-for = Diese Anwendung möchte:
consent-as-asked = Wie angefragt
consent-allow = Erlauben
consent-deny = Ablehnen
consent-expired = Diese Anfrage ist abgelaufen
consent-expired-detail = Kehren Sie zur Anwendung zurück und beginnen Sie von vorn.

## Ein Gerät mit dem angezeigten Code verbinden, und seine Antwort

device-link-title = Gerät verbinden
device-link-intro = Geben Sie den Code ein, den das Gerät anzeigt.
device-link-code = Code
device-code-unknown = Dieser Code ist unbekannt oder abgelaufen.
device-start-again = Beginnen Sie auf dem Gerät von vorn.
device-connected = Gerät verbunden
device-connected-detail = Sie können zu Ihrem Gerät zurückkehren.
device-not-connected = Gerät nicht verbunden
device-not-connected-detail = Dem Gerät wurde der Zugriff auf Ihr Konto verweigert.

## Einmalanmeldung (SSO) eines Matrix-Clients

compat-title = Weiter zu Ihrem Matrix-Client
compat-heading = Bei einem Matrix-Client anmelden?
# Gefolgt von der Adresse, an die die Anmeldung geht.
compat-intro = Ein Matrix-Client möchte sich bei Ihrem Konto anmelden. Wenn Sie fortfahren, wird eine Anmeldung für Ihr Konto gesendet an:
compat-check-address = Fahren Sie nur fort, wenn dies die Adresse der Anwendung ist, bei der Sie sich anmelden.
compat-not-you = Wenn Sie das nicht selbst begonnen haben, schließen Sie diese Seite.
compat-expired = Dieser Anmeldelink ist abgelaufen
compat-expired-detail = Beginnen Sie in Ihrem Matrix-Client von vorn.

## Die Anmeldeanfrage einer Anwendung

authorize-too-many-requests = Zu viele Anfragen
authorize-bad-request = Die Anwendung, die Sie hierher geschickt hat, hat eine Anfrage gestellt, die dieser Dienst nicht annehmen kann.
