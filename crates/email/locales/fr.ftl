# Le courrier du service, en français.

greeting = Bonjour { $username },
code-validity = Saisissez-le sur la page qui l’a demandé. Il ne sert qu’une fois, dans l’heure qui vient.
code-mistake = Si vous n’avez rien demandé, quelqu’un a saisi votre adresse par erreur : vous pouvez ignorer ce message.

verification-subject = Votre code pour { $service } : { $code }
verification-intro = Votre code pour ajouter cette adresse à votre compte sur { $service } est :

registration-subject = Votre code pour { $service } : { $code }
registration-intro = Votre code pour terminer la création de votre compte sur { $service } est :
registration-mistake = Si vous n’avez rien demandé, quelqu’un a saisi votre adresse par erreur : vous pouvez ignorer ce message, et aucun compte n’est créé.

recovery-subject = Choisir un nouveau mot de passe pour { $service }
recovery-intro = Quelqu’un a demandé à choisir un nouveau mot de passe pour votre compte sur { $service }. Pour le choisir, ouvrez ce lien :
recovery-validity = { $minutes ->
    [one] Il ne sert qu’une fois, dans la minute qui vient.
   *[other] Il ne sert qu’une fois, dans les { $minutes } minutes qui viennent.
}
recovery-mistake = Si vous n’avez rien demandé, vous pouvez ignorer ce message : votre mot de passe reste inchangé.

test-subject = Message d’essai de { $service }
test-intro = Ceci est un message d’essai de { $service }, envoyé par `mas-cli doctor --send-test-email`.
test-outro = Si vous pouvez le lire, le courrier du service parvient à cette adresse.
