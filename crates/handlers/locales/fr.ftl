# Les pages du service, en français.

## Partagés par plusieurs pages

common-form-expired = Le formulaire a expiré. Veuillez réessayer.
common-form-expired-go-back = Le formulaire a expiré. Veuillez revenir en arrière et réessayer.
common-invalid-request = Demande non valide
common-something-went-wrong = Une erreur s’est produite
common-please-try-again = Veuillez réessayer.
common-not-allowed = Non autorisé
common-not-an-email = Ce n’est pas une adresse e-mail. Saisissez-en une de la forme alice@example.com.
common-wrong-code = Ce n’est pas le code qui a été envoyé. Vérifiez le message et réessayez.
common-code-expired = Ce code a expiré
common-passwords-differ = Les nouveaux mots de passe ne correspondent pas.
common-password-too-easy = Ce mot de passe est trop facile à deviner. Essayez-en un plus long, ou quelques mots sans rapport entre eux.
common-username-taken = Ce nom d’utilisateur est déjà pris.
common-accept-terms = Acceptez les conditions d’utilisation pour créer un compte.
common-account-not-created = Le compte n’a pas été créé
common-request-cannot-be-completed = Cette demande ne peut pas aboutir
common-choose-allow-or-deny = Choisissez « Autoriser » ou « Refuser ».
common-request-refused = La demande de l’application a été refusée.
common-return-to = Revenir à { $host }
common-signed-in-end = .

## Limitation : { $seconds } est le temps d’attente

throttle-wait = { $seconds ->
    [one] Réessayez dans une seconde.
   *[other] Réessayez dans { $seconds } secondes.
}
throttle-attempts = Trop de tentatives. { throttle-wait }
throttle-codes-sent = Trop de codes ont été envoyés. { throttle-wait }
throttle-codes-tried = Trop de codes ont été essayés. { throttle-wait }
throttle-links = Trop de liens ont été demandés. { throttle-wait }
throttle-from-address-attempts = Trop de tentatives proviennent de votre adresse IP. { throttle-wait }
throttle-from-address-sign-in-attempts = Trop de tentatives de connexion proviennent de votre adresse IP. { throttle-wait }
throttle-from-address-sign-ins = Trop de demandes de connexion proviennent de votre adresse IP. { throttle-wait }
throttle-from-address-codes = Trop de codes ont été saisis depuis votre adresse IP. { throttle-wait }

## Ce que la politique refuse

violation-username-all-numeric = Un nom d’utilisateur doit contenir au moins un caractère autre qu’un chiffre.
violation-username = Ce nom d’utilisateur n’est pas autorisé ici.
violation-email-domain = Les adresses de ce domaine ne sont pas autorisées ici.
violation-email = Cette adresse e-mail n’est pas autorisée ici.
violation-password-too-short = { $min ->
    [one] Un mot de passe doit contenir au moins un caractère.
   *[other] Un mot de passe doit contenir au moins { $min } caractères.
}
violation-password-lowercase = Un mot de passe doit contenir une lettre minuscule.
violation-password-uppercase = Un mot de passe doit contenir une lettre majuscule.
violation-password-digit = Un mot de passe doit contenir un chiffre.
violation-requester = Ce n’est pas autorisé depuis l’endroit où vous vous trouvez.

## Jetons d’inscription

token-unknown = Ce jeton d’inscription n’est pas valide.
token-revoked = Ce jeton d’inscription a été révoqué.
token-expired = Ce jeton d’inscription a expiré.
token-used-up = Ce jeton d’inscription a atteint son nombre maximal d’utilisations.

## Ce qu’une application demande, en mots

scope-openid = Savoir qui vous êtes
scope-email = Voir votre adresse e-mail
scope-matrix-api = Utiliser votre compte Matrix : lire et envoyer des messages en votre nom
scope-matrix-guest = Utiliser votre compte Matrix en tant qu’invité
scope-synapse-admin = Administrer le serveur d’accueil
scope-mas-admin = Administrer ce service d’authentification
scope-mas-graphql = Gérer votre compte
scope-device = Connecter cet appareil : { $device }
scope-unknown = Une autorisation que ce service ne décrit pas : { $scope }

## Les échecs que toute page peut rencontrer

error-unavailable = Temporairement indisponible
error-unavailable-detail = Le service ne parvient pas à joindre sa base de données. Veuillez réessayer dans un instant.
error-homeserver-down = Le serveur d’accueil ne répond pas
error-homeserver-down-detail = Votre modification n’a pas pu être appliquée sur le serveur d’accueil. Veuillez réessayer dans un instant.
error-homeserver-refused = Le serveur d’accueil a refusé la modification
error-homeserver-refused-detail = Votre modification n’a pas pu être appliquée sur le serveur d’accueil. Veuillez réessayer plus tard.

## La page qui transmet une réponse à une application

page-continue = Continuer
page-error-for-developers = Pour les développeurs de l’application :
page-error-access-denied = L’application n’a pas obtenu l’accès.
page-error-interaction-required = L’application a demandé à continuer sans vous, mais il faut d’abord que vous vous connectiez ou que vous donniez votre accord.
page-form-too-large = Le formulaire envoyé est trop volumineux.
page-form-not-a-form = Ce qui a été envoyé n’est pas un formulaire.
page-form-too-slow = Le formulaire a mis trop de temps à arriver. Veuillez réessayer.
page-form-unreadable = Le formulaire n’a pas pu être lu : un champ contient un saut de ligne ou un autre caractère qui ne peut pas être utilisé.

## La page du compte (account.html)

account-title = Votre compte
account-profile = Profil
account-username = Nom d’utilisateur
account-matrix-id = Identifiant Matrix
account-display-name = Nom d’affichage
account-display-name-none = aucun
account-new-display-name = Nouveau nom d’affichage
account-save = Enregistrer
account-password = Mot de passe
account-current-password = Mot de passe actuel
account-new-password = Nouveau mot de passe
account-new-password-again = Nouveau mot de passe (confirmation)
account-sign-out-others-too = Déconnecter toutes les autres sessions
account-change-password = Changer le mot de passe
account-security = Sessions et sécurité
# { $when } est une date et une heure, comme 2025-01-31 14:05 UTC
account-signed-in-at = Ce navigateur s’est connecté le { $when }.

## Les avis après une modification, sur les pages du compte et des sessions

account-notice-display-name = Votre nom d’affichage a été modifié.
account-notice-password = Votre mot de passe a été modifié.
account-notice-password-everywhere = Votre mot de passe a été modifié, et toutes les autres sessions ont été déconnectées.
sessions-notice-ended = La session a été déconnectée.
sessions-notice-renamed = L’appareil a été renommé.
sessions-notice-everywhere = Toutes les autres sessions ont été déconnectées.
emails-notice-added = L’adresse e-mail a été ajoutée.
emails-notice-removed = L’adresse e-mail a été supprimée.

## Les pages de confirmation des actions sensibles (account_confirm.html)
## Les messages « -before » et « -after » entourent l’identifiant Matrix, en gras.

account-deactivate-title = Désactiver votre compte
account-deactivate-intro-before = La désactivation de
account-deactivate-intro-after = vous déconnectera partout, et plus personne ne pourra se connecter à ce compte. Vous ne pourrez pas l’annuler vous-même.
account-erase = Effacer aussi mes messages et mon profil sur le serveur d’accueil
account-deactivate-button = Désactiver mon compte
account-sign-out-others-title = Se déconnecter partout ailleurs
account-sign-out-others-intro-before = Tous les autres navigateurs et tous les appareils connectés en tant que
account-sign-out-others-intro-after = seront déconnectés, et le serveur d’accueil oubliera ces appareils. Ce navigateur restera connecté.
account-reset-title = Réinitialiser votre identité
account-reset-heading = Réinitialiser votre identité cryptographique
account-reset-intro = Si vous avez perdu l’accès à tous vos appareils et à votre clé de récupération, votre client Matrix peut remplacer vos clés d’identité.
account-reset-allow-before = L’autoriser ici permet à
account-reset-allow-after = de le faire sans autre vérification pendant les 10 prochaines minutes.
account-reset-unreadable = Les messages que seule votre ancienne identité pouvait lire restent illisibles.
account-reset-button = Autoriser la réinitialisation
account-confirm-password = Votre mot de passe, pour confirmer qu’il s’agit bien de vous
account-wrong-password = Mot de passe incorrect.

## Les réponses aux modifications du compte

account-unusable = Ce compte ne peut pas être utilisé
account-unusable-detail = Il est verrouillé ou désactivé.
account-off-display-name = La modification du nom d’affichage est désactivée sur ce serveur. Adressez-vous à ses administrateurs.
account-off-password = La modification du mot de passe est désactivée sur ce serveur. Adressez-vous à ses administrateurs.
account-off-deactivate = La désactivation des comptes n’est pas disponible sur ce serveur. Adressez-vous à ses administrateurs.
account-display-name-invalid = Ce nom d’affichage ne peut pas être utilisé
account-display-name-invalid-detail = Un nom d’affichage ne doit pas dépasser { $max } caractères, ni contenir de saut de ligne ou de caractère de contrôle.
account-password-not-changed = Votre mot de passe n’a pas été modifié
account-new-password-too-easy = Le nouveau mot de passe est trop facile à deviner. Essayez-en un plus long, ou quelques mots sans rapport entre eux.
account-current-password-wrong = Le mot de passe actuel est incorrect.
account-reset-allowed = Réinitialisation de l’identité autorisée
account-reset-allowed-detail = Retournez dans votre client Matrix et réinitialisez-y votre identité dans les 10 prochaines minutes.
account-deactivated = Votre compte est désactivé
account-deactivated-detail = Toutes vos sessions sont fermées, et plus personne ne pourra se connecter à ce compte.

## Les adresses e-mail : la section de la page du compte, la page du code (email_code.html), les refus

emails-heading = Adresses e-mail
emails-remove = Supprimer
emails-none = Aucune adresse e-mail n’est associée à ce compte.
emails-add-label = Ajouter une adresse
emails-send-code = Envoyer un code
emails-check-title = Consultez vos e-mails
# « -before » et « -after » entourent l’adresse, en gras
emails-on-its-way-before = Un code vient d’être envoyé à
emails-on-its-way-after = .
emails-may-take-a-minute = Il peut mettre une minute à arriver.
emails-code-label = Code à 6 chiffres
emails-add-button = Ajouter l’adresse
emails-off = La modification des adresses e-mail est désactivée sur ce serveur. Adressez-vous à ses administrateurs.
emails-not-added = L’adresse n’a pas été ajoutée
emails-already-yours = Cette adresse est déjà associée à votre compte.
emails-taken = Cette adresse est déjà utilisée par un compte de ce service.
emails-code-expired-detail = Un code est valable une heure, pour cinq essais au plus, dans le navigateur qui l’a demandé. Ajoutez de nouveau l’adresse pour en recevoir un autre.
emails-add-again = Veuillez ajouter de nouveau l’adresse.
emails-no-such-address = Adresse introuvable
emails-no-such-address-detail = Cette adresse n’est pas associée à votre compte.

## Les sessions et les appareils (sessions.html, session.html)

sessions-title = Sessions
sessions-heading = Sessions et appareils
# « -before » et « -after » entourent le nom d’utilisateur, en gras
sessions-intro-before = Voici où le compte
sessions-intro-after = est connecté.
sessions-intro-sign-out = Déconnecter un appareil met fin immédiatement à son accès à Matrix.
# Entre parenthèses, après le type de la session
sessions-this-browser = ce navigateur
sessions-device = Appareil { $device }
# { $when } est une date et une heure, comme 2025-01-31 14:05 UTC ; { $ip } une adresse IP
sessions-last-active = Dernière activité le { $when }
sessions-last-active-from = Dernière activité le { $when } depuis l’adresse { $ip }
sessions-signed-in = Connexion le { $when }
sessions-sign-out = Déconnecter
sessions-hidden = { $count ->
    [one] Et une autre, non affichée.
   *[other] Et { $count } autres, non affichées.
}
sessions-kind = Type
sessions-kind-browser = Navigateur
sessions-kind-application = Application
sessions-matrix-client = Client Matrix
sessions-browser-name = Connexion à ce service
sessions-device-id = Identifiant de l’appareil
sessions-application = Application
sessions-signed-in-label = Connexion
sessions-last-active-label = Dernière activité
sessions-when-from = { $when } depuis l’adresse { $ip }
sessions-not-recorded = non enregistrée
sessions-user-agent = Navigateur ou application
sessions-may = Cette session peut :
sessions-as-asked = Tel que demandé
sessions-device-name = Nom de l’appareil
sessions-rename = Renommer
sessions-end-device = Déconnecter cet appareil
sessions-end-session = Déconnecter cette session
sessions-no-such-session = Session introuvable
sessions-no-such-session-detail = Aucune de vos sessions ouvertes n’a cet identifiant. Elle a peut-être déjà été déconnectée.
sessions-no-such-device = Appareil introuvable
sessions-no-such-device-detail = Aucune de vos sessions ouvertes n’utilise cet appareil. Il a peut-être déjà été déconnecté.
sessions-name-invalid = Ce nom ne peut pas être utilisé
sessions-name-invalid-detail = Un nom d’appareil doit compter de 1 à { $max } caractères, sans saut de ligne ni caractère de contrôle.

## La navigation des pages du compte (account_nav.html)

nav-account = Compte
nav-sessions = Sessions
nav-sign-out = Se déconnecter

## Registration: the form (register.html)

register-create-an-account = Créer un compte
register-heading = Créer un compte sur { $service_name }
register-username = Nom d’utilisateur
register-email = Adresse e-mail
register-password = Mot de passe
register-password-confirm = Confirmer le mot de passe
register-token = Jeton d’inscription
# "I agree to the" + link "terms of service": the checkbox's label, in two parts.
register-terms-before = J’accepte les
register-terms-link = conditions d’utilisation
register-create-account = Créer le compte
register-have-account = Vous avez déjà un compte ?
register-sign-in = Se connecter

## Registration: what the form is told

register-closed = Les inscriptions sont fermées
register-closed-detail = Ce service ne permet pas de créer soi-même un compte. Demandez-en un à son administrateur.
register-username-invalid = Un nom d’utilisateur ne peut contenir que des lettres minuscules, des chiffres et . _ = - / + (255 caractères au plus).
register-passwords-differ = Les mots de passe ne correspondent pas.
register-token-required = Un jeton d’inscription est requis.
register-captcha-missing = Résolvez le CAPTCHA pour créer un compte.
register-captcha-wrong = Le CAPTCHA n’a pas été résolu. Veuillez réessayer.
register-captcha-unavailable = Le CAPTCHA ne peut pas être vérifié pour le moment. Veuillez réessayer plus tard.
register-homeserver-unreachable = Le serveur d’accueil est injoignable pour le moment. Veuillez réessayer plus tard.
register-username-unavailable = Ce nom d’utilisateur n’est pas disponible.
register-token-no-longer-usable = Ce jeton d’inscription ne peut plus être utilisé.
register-address-taken = Cette adresse est déjà utilisée par un compte de ce service. Connectez-vous, ou récupérez l’accès à ce compte.
register-finished-already = Cette inscription est déjà terminée.
register-code-expired-detail = Un code est valable une heure, pour cinq essais au plus, dans le navigateur qui a rempli le formulaire. Remplissez-le de nouveau pour en recevoir un autre.

## Password recovery: asking for a link (recover.html, recover_sent.html)

recover-title = Mot de passe oublié ?
recover-intro = Saisissez l’adresse e-mail de votre compte. Si un compte de ce service l’utilise, un lien pour choisir un nouveau mot de passe y sera envoyé.
recover-send-link = Envoyer un lien
recover-back-to-sign-in = Retour à la connexion
recover-check-email = Consultez vos e-mails
# "If an account here uses" <address> ", a link to set a new password is on its way there."
recover-sent-before = Si un compte de ce service utilise l’adresse
recover-sent-after = , un lien pour choisir un nouveau mot de passe vient d’y être envoyé.
recover-sent-validity = { $minutes ->
    [one] Il ne sert qu’une fois, dans la minute qui suit.
   *[other] Il ne sert qu’une fois, dans les { $minutes } minutes qui suivent.
}
# "Nothing arrived? Check the address, or" + link "ask again" + "."
recover-sent-retry-before = Vous n’avez rien reçu ? Vérifiez l’adresse ou
recover-sent-retry-link = demandez un nouveau lien
recover-sent-retry-after = .
recover-off = La récupération du mot de passe est désactivée
recover-off-detail = Ce service n’envoie pas de liens pour choisir un nouveau mot de passe. Demandez de l’aide à son administrateur.

## Password recovery: the link (recover_password.html)

recover-password-title = Choisir un nouveau mot de passe
# "For the account of" <address> "."
recover-password-for-before = Pour le compte associé à
recover-password-for-after = .
recover-new-password = Nouveau mot de passe
recover-new-password-confirm = Confirmer le nouveau mot de passe
recover-sign-out-everywhere = Déconnecter toutes les sessions de ce compte
recover-set-password = Enregistrer le mot de passe
recover-link-dead = Ce lien ne fonctionne plus
recover-link-dead-detail = { $minutes ->
    [one] Un lien de récupération ne sert qu’une fois, dans la minute qui suit son envoi. Demandez-en un nouveau.
   *[other] Un lien de récupération ne sert qu’une fois, dans les { $minutes } minutes qui suivent son envoi. Demandez-en un nouveau.
}
recover-ask-new-link = Demander un nouveau lien
recover-done-title = Votre mot de passe est enregistré
recover-done = Connectez-vous avec le nouveau mot de passe.
recover-done-everywhere = Toutes les sessions du compte ont pris fin. Connectez-vous avec le nouveau mot de passe.

## The sign-in page (login.html)

login-title = Se connecter
login-heading = Se connecter à { $service_name }
login-continue-with = Continuer avec { $provider }
login-or-password = Ou connectez-vous avec votre mot de passe :
login-username-or-email = Nom d’utilisateur ou adresse e-mail
login-username = Nom d’utilisateur
login-password = Mot de passe
login-forgot-password = Mot de passe oublié ?
login-no-account = Pas encore de compte ?
login-create-account = Créez-en un

## Why a sign-in with a password is refused

login-passwords-disabled = La connexion par mot de passe est désactivée
login-passwords-disabled-detail = Ce service n’accepte pas les mots de passe.
login-username-too-long = Ce nom d’utilisateur est trop long.
login-wrong-credentials = Nom d’utilisateur ou mot de passe incorrect.
login-account-locked = Ce compte est verrouillé ou désactivé.

## The page of someone already signed in (continue.html): "You are signed in as alice (@alice:example.com)."

continue-title = Connecté
continue-heading = Vous êtes connecté
continue-as = Vous êtes connecté en tant que
continue-continue-as = Continuer en tant que { $username }
continue-sign-out = Se déconnecter pour utiliser un autre compte

## Linking an identity provider's account to the account signed in (upstream.html)
## "You are signed in to { $service_name } as" is followed by the username and "."
## "Link the { $provider } account" is followed by the provider's account name (when
## known), then by upstream-link-question-end.

upstream-link-heading = Lier votre compte { $provider }
upstream-link-signed-in-as = Vous êtes connecté à { $service_name } en tant que
upstream-link-question = Lier le compte { $provider }
upstream-link-question-end = à ce compte, pour pouvoir désormais vous connecter avec { $provider } ?
upstream-link-accounts = Lier les comptes
upstream-not-you = Ce n’est pas vous ? Déconnectez-vous

## Creating an account through an identity provider (upstream.html)
## "You signed in with { $provider }" [ "as" <account name> ] ". " upstream-creates-account
## upstream-mxid <Matrix ID> upstream-mxid-end
## upstream-use-displayname <display name> upstream-use-displayname-end
## upstream-add-email <email address> upstream-add-email-end
## upstream-agree-to <link: upstream-terms-of-service>

upstream-register-heading = Créer votre compte
upstream-signed-in-with = Vous vous êtes connecté avec { $provider }
upstream-signed-in-as = en tant que
upstream-creates-account = Un compte lié à cette identité va être créé sur { $service_name }.
upstream-mxid = Votre identifiant Matrix sera
upstream-mxid-end = , comme l’indique { $provider }.
upstream-use-displayname = Utiliser
upstream-use-displayname-end = comme nom d’affichage
upstream-displayname-label = Nom d’affichage :
upstream-add-email = Ajouter
upstream-add-email-end = à votre compte
upstream-email-label = Adresse e-mail :
upstream-agree-to = J’accepte les
upstream-terms-of-service = conditions d’utilisation
upstream-create-account = Créer le compte
upstream-have-account = Vous avez déjà un compte ?
upstream-sign-in-to-link = Connectez-vous pour le lier

## Failures of a sign-in through an identity provider
## { $detail } is a technical detail, in English, or the provider's own words.

upstream-too-many-attempts = Trop de tentatives
upstream-unknown-provider = Méthode de connexion inconnue
upstream-unknown-provider-detail = Ce fournisseur d’identité n’est pas (ou plus) proposé ici.
upstream-misconfigured = Cette méthode de connexion est mal configurée
upstream-misconfigured-detail = Prévenez l’administrateur : { $detail }.
upstream-secret-unreadable = son secret client ne peut pas être lu
upstream-public-base-unjoinable = http.public_base ne peut pas être complété par un chemin
upstream-failed = La connexion avec { $provider } n’a pas abouti
upstream-error-unreachable = Le fournisseur d’identité est injoignable : { $detail }. Veuillez réessayer.
upstream-error-configuration = Le fournisseur d’identité est mal configuré : { $detail }. Veuillez réessayer.
upstream-error-token-refused = Le fournisseur d’identité a refusé d’échanger le code : { $detail }. Veuillez réessayer.
upstream-error-id-token = Le jeton d’identité (ID token) du fournisseur d’identité a été refusé : { $detail }. Veuillez réessayer.
upstream-error-userinfo = La réponse userinfo du fournisseur d’identité a été refusée : { $detail }. Veuillez réessayer.
upstream-error-logout-token = Le jeton de déconnexion a été refusé : { $detail }. Veuillez réessayer.
upstream-cancelled = La connexion a été annulée ou refusée auprès du fournisseur ({ $detail }).
upstream-provider-error = Le fournisseur a répondu par une erreur ({ $detail }). Veuillez réessayer.
upstream-stale-trip = Cette connexion ne peut pas aboutir
upstream-stale-trip-detail = Elle est inconnue, a déjà été utilisée, a expiré ou a été lancée dans un autre navigateur. Recommencez depuis la page de connexion.
upstream-account-locked = Ce compte est verrouillé ou désactivé
upstream-account-locked-detail = Adressez-vous à l’administrateur de ce service.
upstream-username-exists = Un compte avec ce nom d’utilisateur existe déjà
upstream-username-exists-detail = { $username } est déjà pris ici, et votre compte { $provider } ne peut pas y être lié. Adressez-vous à l’administrateur.
upstream-invalid-username = `{ $username }` ne peut pas être un nom d’utilisateur : utilisez des lettres minuscules, des chiffres et . _ = - / + (255 caractères au plus).

## Autoriser une application (la page de consentement, aussi pour la demande d’un appareil)

consent-title = Autoriser l’accès
consent-heading = Autoriser { $client } à accéder à votre compte ?
# Suivi du nom d’utilisateur en gras, puis de « . » ; aussi sur la page de connexion d’un client Matrix.
consent-signed-in-as = Vous êtes connecté en tant que
# Suivi de l’adresse de l’application en lien, puis de « . ».
consent-client-claims = Cette application affirme être
consent-unverified = Application non vérifiée.
consent-unverified-detail = Elle s’est enregistrée elle-même auprès de { $service } : le nom et l’adresse ci-dessus sont ses propres affirmations, que personne n’a vérifiées.
consent-unverified-device = Ne l’autorisez que si vous avez lancé cette connexion vous-même, sur un appareil que vous avez devant vous : quiconque vous a envoyé un code à saisir ici essaie d’accéder à votre compte.
# Suivi de la liste de ce que l’application demande (voir « scope-* »).
consent-asks-for = Cette application demande à pouvoir :
consent-as-asked = Tel que demandé
consent-allow = Autoriser
consent-deny = Refuser
consent-expired = Cette demande a expiré
consent-expired-detail = Revenez à l’application et recommencez.

## Connecter un appareil avec le code qu’il affiche, et sa réponse

device-link-title = Connecter un appareil
device-link-intro = Saisissez le code affiché par l’appareil.
device-link-code = Code
device-code-unknown = Ce code est inconnu ou a expiré.
device-start-again = Recommencez sur l’appareil.
device-connected = Appareil connecté
device-connected-detail = Vous pouvez revenir à votre appareil.
device-not-connected = Appareil non connecté
device-not-connected-detail = L’accès à votre compte a été refusé à l’appareil.

## L’authentification unique d’un client Matrix

compat-title = Continuer vers votre client Matrix
compat-heading = Se connecter à un client Matrix ?
# Suivi de l’adresse à laquelle la connexion est envoyée.
compat-intro = Un client Matrix a demandé à se connecter à votre compte. Si vous continuez, un jeton de connexion à votre compte sera envoyé à :
compat-check-address = Ne continuez que s’il s’agit de l’adresse de l’application à laquelle vous vous connectez.
compat-not-you = Si vous n’êtes pas à l’origine de cette demande, fermez cette page.
compat-expired = Ce lien de connexion a expiré
compat-expired-detail = Recommencez depuis votre client Matrix.

## La demande de connexion d’une application

authorize-too-many-requests = Trop de demandes
authorize-bad-request = L’application qui vous a envoyé ici a fait une demande que ce service ne peut pas accepter.
